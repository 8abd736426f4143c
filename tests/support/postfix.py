"""A private Debian Postfix on loopback: the sender's own relay.

Its own configuration, queue and data directories under a temporary directory (the machine's
Postfix, if any, is not touched); ``master -d`` runs in the foreground as the test's child.
Routes: ``example.org`` (and any other domain given) to the SMTP sink, ``gone.example`` to
Postfix's ``error`` transport (so Postfix itself writes the DSN, RFC 3464), and the bounce
domain into the Maildir that the private Dovecot serves — the bounce mailbox.
"""

import contextlib
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

MASTER = "/usr/lib/postfix/sbin/master"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.sender.example
mydomain = sender.example
myorigin = sender.example
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = inline:{{ {transports} }}
virtual_mailbox_domains = {bounce_domain}
virtual_mailbox_base = {mailbox_root}
virtual_mailbox_maps = static:{mailbox_user}/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
alternate_config_directories = {root}/conf
smtp_tls_security_level = none
smtp_dns_support_level = disabled
bounce_queue_lifetime = 0
delay_warning_time = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
shlib_directory = /usr/lib/postfix
daemon_directory = /usr/lib/postfix/sbin
"""


class Postfix:
    def __init__(
        self, *, sink_port: int, mailbox_root: Path, mailbox_user: str, bounce_domain: str
    ):
        if not os.path.exists(MASTER):
            pytest.skip("Postfix is not installed (apt-get install postfix)")
        self.root = Path(tempfile.mkdtemp(prefix="nfm-postfix-"))
        self.port = free_port()
        os.chmod(self.root, 0o755)  # noqa: S103 - the postfix user must reach data/ and queue/
        conf = self.root / "conf"
        conf.mkdir()
        for sub in ("queue", "data"):
            (self.root / sub).mkdir()
        dovecot = pwd.getpwnam("dovecot")
        master_cf = Path("/etc/postfix/master.cf").read_text()
        lines = []
        for line in master_cf.splitlines():
            if line.startswith("smtp      inet"):
                line = f"127.0.0.1:{self.port} inet n - n - - smtpd"
            lines.append(line)
        (conf / "master.cf").write_text("\n".join(lines) + "\n")
        shutil.copy("/etc/postfix/dynamicmaps.cf", conf / "dynamicmaps.cf")
        transports = " ".join(
            [
                f"{{{bounce_domain}=virtual:}}",
                "{gone.example=error:5.1.1 The email account you tried to reach does not exist}",
                f"{{example.org=smtp:[127.0.0.1]:{sink_port}}}",
            ]
        )
        (conf / "main.cf").write_text(
            MAIN_CF.format(
                root=self.root,
                transports=transports,
                bounce_domain=bounce_domain,
                mailbox_root=mailbox_root,
                mailbox_user=mailbox_user,
                uid=dovecot.pw_uid,
                gid=dovecot.pw_gid,
            )
        )
        # No chroot: the private instance has no copy of /etc under its queue directory.
        subprocess.run(["postconf", "-c", str(conf), "-F", "*/*/chroot = n"], check=True)
        self.conf = conf
        self.process: subprocess.Popen | None = None

    def start(self) -> "Postfix":
        subprocess.run(
            ["postfix", "-c", str(self.conf), "set-permissions"], check=False, capture_output=True
        )
        self.process = subprocess.Popen(
            [MASTER, "-c", str(self.conf), "-d"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(self.log())

    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
