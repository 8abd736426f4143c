"""Opening an SMTP connection the way a bulk sender must: TLS verified by default.

- STARTTLS (``use_tls``) and implicit TLS (``use_ssl``, port 465) check the server's
  certificate against the system's CAs *and* its host name, unless the connection says
  otherwise: ``tls_fingerprint`` pins one certificate (its SHA-256, for a relay with a
  self-signed certificate: only that certificate is accepted), ``tls_verify: false``
  explicitly accepts any certificate (the dashboard shows it in red).
- A campaign without a connection uses Django's documented settings: EMAIL_HOST, EMAIL_PORT,
  EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS, EMAIL_USE_SSL, EMAIL_TIMEOUT.
- What can go wrong is told apart, because the pipeline acts differently on each:
  ``ConnectionDown`` (refused, reset, timed out, 4xx greeting: wait and retry, nothing is
  lost), ``SetupError`` (a certificate that fails verification, STARTTLS not offered,
  credentials refused, "530 Must issue a STARTTLS": a setting to fix, so the campaign pauses
  at once instead of failing every recipient).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import smtplib
import ssl
from dataclasses import dataclass
from typing import Any

from django.conf import settings


class ConnectionDown(Exception):
    """Nothing was handed off: the server could not be reached or dropped us before DATA."""


class SetupError(Exception):
    """The connection's settings (TLS, credentials) keep any message from going out."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str = ""
    password: str = ""
    use_tls: bool = False  # STARTTLS
    use_ssl: bool = False  # implicit TLS
    tls_verify: bool = True
    tls_fingerprint: str = ""  # SHA-256 of the server certificate (DER), hex
    timeout: float = 60.0

    @classmethod
    def of(cls, connection: Any | None) -> SmtpSettings:
        """A SendingConnection's options, or Django's EMAIL_* settings without one."""
        if connection is None:
            return cls(
                host=settings.EMAIL_HOST,
                port=int(settings.EMAIL_PORT),
                username=settings.EMAIL_HOST_USER or "",
                password=settings.EMAIL_HOST_PASSWORD or "",
                use_tls=bool(settings.EMAIL_USE_TLS),
                use_ssl=bool(settings.EMAIL_USE_SSL),
                timeout=float(settings.EMAIL_TIMEOUT or 60),
            )
        o = connection.options or {}
        use_ssl = _flag(o.get("use_ssl"))
        return cls(
            host=str(o.get("host") or settings.EMAIL_HOST),
            port=int(o.get("port") or (465 if use_ssl else settings.EMAIL_PORT)),
            username=str(o.get("username") or ""),
            password=str(o.get("password") or ""),
            use_tls=_flag(o.get("use_tls")),
            use_ssl=use_ssl,
            tls_verify=o.get("tls_verify") is None or _flag(o.get("tls_verify")),
            tls_fingerprint=normalise_fingerprint(str(o.get("tls_fingerprint") or "")),
            timeout=float(o.get("timeout") or 60),
        )

    @property
    def tls(self) -> str:
        """How the dashboard describes this connection's TLS."""
        if not (self.use_tls or self.use_ssl):
            return "none"
        if self.tls_fingerprint:
            return "pinned"
        return "verified" if self.tls_verify else "unverified"


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def normalise_fingerprint(value: str) -> str:
    return value.replace(":", "").replace(" ", "").strip().lower()


def certificate_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def tls_context(s: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if s.tls_fingerprint or not s.tls_verify:
        # A pinned certificate is checked by its fingerprint after the handshake instead.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"]+@[A-Za-z0-9.-]+")


class _Ledger(smtplib.SMTP):
    """Remembers whether the current message's body (with its final dot) was written to the
    socket: after that, a lost answer is no reason to send again (see campaigns.pipeline)."""

    body_sent = False
    _in_data = False

    def data(self, msg):
        self.body_sent = False
        self._in_data = True
        try:
            return super().data(msg)
        finally:
            self._in_data = False

    def send(self, s):
        super().send(s)
        if self._in_data and isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.body_sent = True

    # smtplib quotes each address through email.utils.parseaddr, the largest cost of a send
    # after the socket. A plain address (what the ledger and VERP hold) needs only brackets;
    # anything else still goes through smtplib's own parsing.
    def mail(self, sender, options=()):
        if _PLAIN_ADDRESS.fullmatch(sender) and not any(o.lower() == "smtputf8" for o in options):
            self.putcmd("mail", f"FROM:<{sender}>{self._options(options)}")
            return self.getreply()
        return super().mail(sender, options)

    def rcpt(self, recip, options=()):
        if _PLAIN_ADDRESS.fullmatch(recip):
            self.putcmd("rcpt", f"TO:<{recip}>{self._options(options)}")
            return self.getreply()
        return super().rcpt(recip, options)

    def _options(self, options) -> str:
        return " " + " ".join(options) if options and self.does_esmtp else ""


class LedgerSMTP(_Ledger, smtplib.SMTP):
    pass


class LedgerSMTPSSL(_Ledger, smtplib.SMTP_SSL):
    pass


def _check_pin(smtp: smtplib.SMTP, s: SmtpSettings) -> None:
    if not s.tls_fingerprint:
        return
    # Not an SSLSocket: no TLS at all, so nothing matches the pin.
    der = smtp.sock.getpeercert(binary_form=True) if isinstance(smtp.sock, ssl.SSLSocket) else None
    seen = certificate_fingerprint(der or b"")
    if not hmac.compare_digest(seen, s.tls_fingerprint):
        raise SetupError(
            f"The server's certificate (SHA-256 {seen}) is not the pinned one "
            f"({s.tls_fingerprint})."
        )


def smtp_error_text(exc: BaseException) -> str:
    """An SMTP error as the ledger and the pages show it: the server's code and words."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return f"SMTP {exc.smtp_code} {text}"
    return f"{exc.__class__.__name__}: {exc}"


def smtp_open(s: SmtpSettings) -> LedgerSMTP:
    """A connected, TLS-checked, logged-in SMTP session, or ConnectionDown / SetupError."""
    smtp: smtplib.SMTP | None = None
    try:
        if s.use_ssl:
            smtp = LedgerSMTPSSL(s.host, s.port, timeout=s.timeout, context=tls_context(s))
            _check_pin(smtp, s)
        else:
            smtp = LedgerSMTP(s.host, s.port, timeout=s.timeout)
            if s.use_tls:
                smtp.starttls(context=tls_context(s))
                _check_pin(smtp, s)
        if s.username:
            smtp.login(s.username, s.password)
    except SetupError:
        _close(smtp)
        raise
    except ssl.SSLCertVerificationError as exc:
        _close(smtp)
        raise SetupError(
            f"The server's TLS certificate failed verification ({exc.verify_message or exc}). "
            "Fix the certificate, or pin it (tls_fingerprint) on the connection."
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        _close(smtp)
        raise SetupError(f"The server offers no STARTTLS ({exc}).") from exc
    except smtplib.SMTPAuthenticationError as exc:
        _close(smtp)
        raise SetupError(f"The server refused the login: {smtp_error_text(exc)}") from exc
    except smtplib.SMTPResponseException as exc:
        _close(smtp)
        if 400 <= exc.smtp_code < 500:
            raise ConnectionDown(smtp_error_text(exc)) from exc
        raise SetupError(f"The server refused the session: {smtp_error_text(exc)}") from exc
    except OSError as exc:  # refused, reset, timed out, TLS handshake cut, disconnected
        _close(smtp)
        raise ConnectionDown(smtp_error_text(exc)) from exc
    return smtp  # type: ignore[return-value]


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


def is_setup_refusal(exc: smtplib.SMTPResponseException) -> bool:
    """MAIL FROM refused for a session reason (530 "Must issue a STARTTLS", 530/535
    authentication required): every recipient would be refused alike."""
    text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
    return exc.smtp_code in (530, 534, 535, 538) or (
        exc.smtp_code >= 500 and "STARTTLS" in text.upper()
    )
