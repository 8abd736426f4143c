"""A private Debian Dovecot on loopback serving one IMAP mailbox (the bounce mailbox).

Its own config, runtime and mail directories under a temporary directory, so it never touches
the machine's Dovecot. Skips the test when Dovecot is not installed.
"""

import contextlib
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.smtp import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_login_user = {user}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
"""


def _live_members(group: int) -> bool:
    """Whether a process of process group ``group`` is still running (not yet a zombie)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")"
            state, _ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:
            continue  # gone meanwhile
        if int(pgrp) == group and state != "Z":
            return True
    return False


class Dovecot:
    user = "bounces"
    password = "bounce-secret"

    def __init__(self):
        if not os.path.exists(DOVECOT):
            pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
        self.root = Path(tempfile.mkdtemp(prefix="nfm-dovecot-"))
        self.port = free_port()
        account = pwd.getpwnam("dovecot")
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir()
        os.chown(self.root / "mail", account.pw_uid, account.pw_gid)
        os.chmod(self.root, 0o755)  # noqa: S103 - dovecot (another user) must reach it
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        self.conf = self.root / "dovecot.conf"
        self.conf.write_text(
            CONF.format(root=self.root, port=self.port, user="dovecot", group=account.pw_gid)
        )

    @property
    def url(self) -> str:
        return f"imap+plain://{self.user}:{self.password}@127.0.0.1:{self.port}/INBOX"

    def start(self) -> "Dovecot":
        subprocess.run([DOVECOT, "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError((self.root / "dovecot.log").read_text(errors="replace"))

    def stop(self) -> None:
        """SIGTERM to the master, then wait until every process of its group has exited.
        Not `dovecot stop`: that waits until the master is reaped, and a daemon's zombies are
        reaped by init, which here takes a second or two more each time."""
        try:
            master = int((self.root / "run" / "master.pid").read_text())
            os.kill(master, signal.SIGTERM)
        except (OSError, ValueError):
            master = None
        deadline = time.monotonic() + 20
        while master is not None and _live_members(master):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(master, signal.SIGKILL)
                break
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def imap(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(self.user, self.password)
        return imap

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver a message into the mailbox over IMAP (APPEND)."""
        imap = self.imap()
        try:
            typ, data = imap.append(folder, None, None, raw)
            assert typ == "OK", data
        finally:
            imap.logout()

    def count(self, folder: str = "INBOX", criteria: str = "ALL") -> int:
        imap = self.imap()
        try:
            typ, _ = imap.select(f'"{folder}"')
            if typ != "OK":
                return 0
            typ, data = imap.uid("SEARCH", criteria)
            return len((data[0] or b"").split())
        finally:
            imap.logout()
