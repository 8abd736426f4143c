"""NoFailMail settings: one file, driven by the environment.

Every variable is documented in deploy/.env.example. With nothing set, `manage.py check` and
`migrate` run on SQLite under var/ with an embedded (filesystem) Celery broker, so a fresh
clone needs no service for them; the app itself runs on PostgreSQL (`make run` starts an
embedded one). A malformed value stops start-up with a message naming the variable.
"""

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, overload
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import csp.constants as _csp_constants
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def _read(name: str) -> str | None:
    """The value of NAME, or the contents of the file named by NAME_FILE (for secrets)."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return None


@overload
def env_str(name: str, default: str) -> str: ...
@overload
def env_str(name: str, default: None = None) -> str | None: ...
def env_str(name: str, default: str | None = None) -> str | None:
    value = _read(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _read(name)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use True or False")


def env_int(name: str, default: int) -> int:
    value = _read(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    value = _read(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


_DATABASE_ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "sqlite": "django.db.backends.sqlite3",
}


def env_database(name: str, default: str) -> dict[str, Any]:
    """A database URL: postgres://user:password@host:port/name?option=value (the host may be a
    URL-encoded socket directory: postgres://user@%2Fpath%2Fto%2Fdir/name), or sqlite:///path.
    Query parameters become the connection's OPTIONS."""
    url = _read(name) or default
    try:
        parts = urlsplit(url)
        engine = _DATABASE_ENGINES[parts.scheme]
        port = parts.port
    except (KeyError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name}={url!r} is not a database URL") from exc
    config: dict[str, Any] = {"ENGINE": engine, "NAME": unquote(parts.path[1:])}
    if parts.scheme == "sqlite":
        return config
    host = parts.netloc.rpartition("@")[2]
    if parts.port is not None:
        host = host.rpartition(":")[0]
    config |= {
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        # A socket directory keeps its case; a host name is case-insensitive.
        "HOST": unquote(host) if host.upper().startswith("%2F") else parts.hostname or "",
        "PORT": port or "",
    }
    options = {k: int(v) if v.isdigit() else v for k, v in parse_qsl(parts.query)}
    if options:
        config["OPTIONS"] = options
    return config


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is False")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdef"  # noqa: S105
# Old keys keep signed recipient links (preference center, unsubscribe) valid after a rotation.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])

SITE_URL = (env_str("SITE_URL", "http://127.0.0.1:8000") or "").rstrip("/")
if not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SITE_URL={SITE_URL!r} must start with http:// or https://")

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "django_celery_beat",
    "anymail",
    "axes",
    "csp",
    "core",
    "subscribers",
    "templates_app",
    "campaigns",
    "analytics",
    "preferences",
    "signup",
    "ninja",  # the API docs' Swagger UI, served from our own static files
    "api",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /api/ only: one JSON error shape, Idempotency-Key replays, the write log.
    "api.middleware.ApiMiddleware",
    # Content-Security-Policy on every answer (settings below); views may narrow or widen it.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After the CSRF check: its process_view cleans form posts the check has read.
    "core.middleware.NulByteMiddleware",
    # Turns a locked-out login (django-axes) into the "too many attempts" page.
    "axes.middleware.AxesMiddleware",
    # Innermost: sees the view's own bare 405 first.
    "core.middleware.FriendlyMethodNotAllowed",
]

ROOT_URLCONF = "nofailmail.urls"
WSGI_APPLICATION = "nofailmail.wsgi.application"
ASGI_APPLICATION = "nofailmail.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.roles",
                "core.context_processors.brand",
            ],
        },
    },
]

# Databases: PostgreSQL; a SQLite file when DATABASE_URL is unset, for `check` and `migrate`.
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'nofailmail.sqlite3'}")}
# Behind PgBouncer in transaction mode (deploy/SCALING.md, "PgBouncer"): DATABASE_POOLED_URL is
# the pooler's address, and every connection of the app goes through it; DATABASE_URL stays the
# server itself, the "direct" alias, for an operator's session (`dbshell --database=direct`);
# no code needs one. Run `migrate` with DATABASE_POOLED_URL unset (its default connection is
# then the server). A pooled connection may run each transaction on a different server
# connection: no server-side cursors (a WITH HOLD cursor stays behind on one), no prepared
# statements (PgBouncer before 1.21 cannot route them; Django's default, made sure of).
if env_str("DATABASE_POOLED_URL"):
    # Tests make one test database, reached both ways.
    DATABASES["direct"] = DATABASES["default"] | {"TEST": {"MIRROR": "default"}}
    DATABASES["default"] = env_database("DATABASE_POOLED_URL", "")
    if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
        raise ImproperlyConfigured("DATABASE_POOLED_URL must be a postgres:// URL (PgBouncer)")
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
for _database in DATABASES.values():
    _database["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60)
    _database["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: Redis when configured (shared by every process: rate limits and throttles live
# there), otherwise the database so that several local processes still agree.
CACHE_URL = env_str("CACHE_URL") or env_str("REDIS_URL")
if CACHE_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "nofailmail_cache",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Password guessing (dashboard and admin logins): after LOGIN_FAILURE_LIMIT wrong passwords for
# one username from one address, that pair is refused for LOGIN_LOCKOUT_MINUTES (django-axes,
# counted in PostgreSQL, so every web process agrees). By the pair, not by address alone: behind
# a proxy every visitor may share one address, and one guesser must not lock everybody out.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # failures are kept; successful logins are not logged twice
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
# The same client address as the signup protection (X-Forwarded-For only when trusted).
AXES_CLIENT_IP_CALLABLE = "signup.protection.client_ip"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfigured(f"TIME_ZONE={TIME_ZONE!r} is not an IANA time zone") from exc
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads (CSV imports) go to disk

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Email. In development nothing leaves the machine: messages are written to var/mail/.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "NoFailMail <newsletter@example.com>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# Every ANYMAIL_<SETTING> variable becomes ANYMAIL["<SETTING>"] (e.g. ANYMAIL_MAILGUN_API_KEY,
# ANYMAIL_WEBHOOK_SECRET), so any ESP anymail supports is configured without code changes.
ANYMAIL: dict[str, str | None] = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_") and not key.endswith("_FILE")
}
for _key in [k for k in os.environ if k.startswith("ANYMAIL_") and k.endswith("_FILE")]:
    ANYMAIL[_key.removeprefix("ANYMAIL_").removesuffix("_FILE")] = _read(_key.removesuffix("_FILE"))

# Company identity shown in email footers and recipient pages (CAN-SPAM needs the address).
COMPANY_NAME = env_str("COMPANY_NAME", "NoFailMail Demo Co.")
COMPANY_POSTAL_ADDRESS = env_str("COMPANY_POSTAL_ADDRESS", "1 Example Street, 75001 Paris, France")
# Branding of the recipient pages (preference center, unsubscribe, exit survey).
BRAND_LOGO_URL = env_str("BRAND_LOGO_URL", "")
BRAND_COLOR = env_str("BRAND_COLOR", "#0b5ed7")
if not re.fullmatch(r"#[0-9a-fA-F]{6}", BRAND_COLOR):
    raise ImproperlyConfigured(f"BRAND_COLOR={BRAND_COLOR!r} is not a #rrggbb colour")
# The mailto: half of List-Unsubscribe; mail to it arrives through anymail's inbound webhook.
# Empty: unsubscribe@<the campaign's sending domain>.
UNSUBSCRIBE_MAILTO = env_str("UNSUBSCRIBE_MAILTO", "")

# Celery. Redis in production and tests; with no broker configured an embedded filesystem
# transport lets the worker and beat run as separate processes with no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange tables (kombu's default is ./control, in whatever directory the process
        # started: a stray folder in the checkout).
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # A task not acknowledged within this window is redelivered: longer than any task runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "nofailmail")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Reliability: tasks are idempotent, so acknowledge after they finish and requeue them if the
# worker dies; take one message at a time so a crash strands nothing else.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queues of their own, so neither waits behind a campaign's sending tasks: outgoing webhooks,
# and transactional messages (one recipient, now). A worker consumes them with
# `-Q nofailmail,webhooks,transactional` (deploy/compose.yaml runs a worker for the last two).
CELERY_WEBHOOK_QUEUE = env_str("CELERY_WEBHOOK_QUEUE", "webhooks")
CELERY_TRANSACTIONAL_QUEUE = env_str("CELERY_TRANSACTIONAL_QUEUE", "transactional")
CELERY_TASK_ROUTES = {
    "webhooks.tasks.*": {"queue": CELERY_WEBHOOK_QUEUE},
    "campaigns.transactional.*": {"queue": CELERY_TRANSACTIONAL_QUEUE},
}
CELERY_ALL_QUEUES = [CELERY_TASK_DEFAULT_QUEUE, CELERY_WEBHOOK_QUEUE, CELERY_TRANSACTIONAL_QUEUE]

# Security. Production values are the defaults whenever DEBUG is False.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp) on every dashboard and public page. Scripts: our own
# static files, and inline ones only with the request's nonce (<script nonce="{{
# request.csp_nonce }}">); no inline handlers (onclick=...): static/js/app.js gives the same
# behaviours through data- attributes. No eval (htmx runs with allowEval false). Styles may be
# inline: emails shown in srcdoc previews (which inherit this policy) are styled by inline
# attributes, as are progress bars. Images come from anywhere an email points to. The signup
# frames replace frame-ancestors with their form's allowed sites (signup.public).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", _csp_constants.NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["*", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],  # as X-Frame-Options: DENY
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # axes logs every successful login at INFO ("Deleted 0 failed login attempts").
        "axes": {"level": "WARNING"},
    },
}

# Subscribers.
# The subscriber list counts exactly up to this many rows, and shows an estimate ("about")
# past it: a COUNT(*) of a million-row list on every page view is what this avoids.
SUBSCRIBER_EXACT_COUNT_LIMIT = env_int("SUBSCRIBER_EXACT_COUNT_LIMIT", 10000)
# The segment editor's live count: exact if it takes at most this long, else "about N" from a
# sample, then the exact count, given up to SEGMENT_COUNT_EXACT_MS, replaces it.
SEGMENT_COUNT_LIVE_MS = env_int("SEGMENT_COUNT_LIVE_MS", 60)
SEGMENT_COUNT_EXACT_MS = env_int("SEGMENT_COUNT_EXACT_MS", 5000)

# Signup forms.
# How long a rendered form (and a started multi-step signup) may be submitted, in seconds.
SIGNUP_TOKEN_MAX_AGE = env_int("SIGNUP_TOKEN_MAX_AGE", 24 * 3600)
# Submissions per client IP per window (all forms together), counted in the shared cache.
SIGNUP_RATE_PER_IP = env_int("SIGNUP_RATE_PER_IP", 30)
SIGNUP_RATE_IP_WINDOW = env_int("SIGNUP_RATE_IP_WINDOW", 600)
# Submissions accepted per target address per window; more get a normal answer and do nothing.
SIGNUP_RATE_PER_ADDRESS = env_int("SIGNUP_RATE_PER_ADDRESS", 10)
SIGNUP_RATE_ADDRESS_WINDOW = env_int("SIGNUP_RATE_ADDRESS_WINDOW", 3600)
# At most one confirmation email per address per this many seconds (no inbox flooding).
SIGNUP_CONFIRMATION_WINDOW = env_int("SIGNUP_CONFIRMATION_WINDOW", 3600)
# A multi-step form sends the confirmation email when the visitor finishes; one who leaves after
# step 1 gets it this many seconds later (the beat's sweep runs every minute).
SIGNUP_CONFIRMATION_GRACE_SECONDS = env_int("SIGNUP_CONFIRMATION_GRACE_SECONDS", 300)
# Difficulty of the optional proof-of-work challenge, in leading zero bits of a SHA-256.
SIGNUP_POW_BITS = env_int("SIGNUP_POW_BITS", 16)
# One reminder this many hours after an unanswered confirmation email.
SIGNUP_REMINDER_HOURS = env_int("SIGNUP_REMINDER_HOURS", 48)
# Subscribers who signed up through a form and never confirmed are deleted after these days.
SIGNUP_PURGE_DAYS = env_int("SIGNUP_PURGE_DAYS", 14)
# Behind a reverse proxy that appends the client address to X-Forwarded-For.
SIGNUP_TRUST_X_FORWARDED_FOR = env_bool("SIGNUP_TRUST_X_FORWARDED_FOR", False)
# Extra disposable domains (one per line) on top of the built-in list.
SIGNUP_DISPOSABLE_DOMAINS_FILE = env_str("SIGNUP_DISPOSABLE_DOMAINS_FILE", "")
# Largest lead magnet upload, in megabytes.
SIGNUP_LEAD_MAGNET_MAX_MB = env_int("SIGNUP_LEAD_MAGNET_MAX_MB", 25)

# Analytics: tracking buffer, feedback loop, reputation guardrails.
# Tracking hits and ESP webhook events are buffered in this Redis and written in bulk by a
# worker; unset (the embedded default) they are written to the database directly.
TRACKING_REDIS_URL = env_str("TRACKING_REDIS_URL") or env_str("REDIS_URL") or None
# Beat's flush interval: also how long a bounce an ESP reported waits (plus the batch in
# progress) before it suppresses its address.
TRACKING_FLUSH_SECONDS = env_int("TRACKING_FLUSH_SECONDS", 2)
TRACKING_FLUSH_BATCH = env_int("TRACKING_FLUSH_BATCH", 5000)
# Raw events (opens, clicks, ESP feedback) are kept this many months after the month they
# happened in, then dropped a month at a time (analytics.partitions; 0 keeps them for ever).
# Campaign reports, engagement scores and suppressions are kept apart and stay.
EVENT_RETENTION_MONTHS = env_int("EVENT_RETENTION_MONTHS", 13)
# Beat makes the events' monthly partitions this many months ahead of the current one.
EVENT_PARTITIONS_AHEAD = env_int("EVENT_PARTITIONS_AHEAD", 3)
# Behind a reverse proxy, the client address is the first of X-Forwarded-For.
TRACKING_TRUST_X_FORWARDED_FOR = env_bool("TRACKING_TRUST_X_FORWARDED_FOR", False)
# Soft bounces suppress an address after SOFT_BOUNCE_LIMIT of them within SOFT_BOUNCE_DAYS.
SOFT_BOUNCE_LIMIT = env_int("SOFT_BOUNCE_LIMIT", 3)
SOFT_BOUNCE_DAYS = env_int("SOFT_BOUNCE_DAYS", 30)
# Rolling reputation rates (per sending domain over the window, per campaign overall), in
# basis points of 0.01 %: complaints 0.1 % / 0.3 % (Gmail's lines), hard bounces 2 % / 5 %.
# No verdict below REPUTATION_MIN_VOLUME delivered messages: 1 complaint in 10 is noise.
REPUTATION_WINDOW_DAYS = env_int("REPUTATION_WINDOW_DAYS", 7)
REPUTATION_MIN_VOLUME = env_int("REPUTATION_MIN_VOLUME", 100)
REPUTATION_COMPLAINT_WARN_BP = env_int("REPUTATION_COMPLAINT_WARN_BP", 10)
REPUTATION_COMPLAINT_CRITICAL_BP = env_int("REPUTATION_COMPLAINT_CRITICAL_BP", 30)
REPUTATION_BOUNCE_WARN_BP = env_int("REPUTATION_BOUNCE_WARN_BP", 200)
REPUTATION_BOUNCE_CRITICAL_BP = env_int("REPUTATION_BOUNCE_CRITICAL_BP", 500)
# An admin's acknowledgement of a critical alert lets its campaigns run until the rate rises
# more than this many percent above the rate acknowledged (or a window after it was given).
REPUTATION_ACK_TOLERANCE_PERCENT = env_int("REPUTATION_ACK_TOLERANCE_PERCENT", 10)
# Rejections for the sender's fault (failed authentication / DMARC, policy and reputation
# blocks: analytics.bounces): 0.5 % / 2 %, lower than hard bounces, because every further
# message into a block deepens it, and no list cleaning fixes it.
REPUTATION_SENDER_BOUNCE_WARN_BP = env_int("REPUTATION_SENDER_BOUNCE_WARN_BP", 50)
REPUTATION_SENDER_BOUNCE_CRITICAL_BP = env_int("REPUTATION_SENDER_BOUNCE_CRITICAL_BP", 200)
# The largest ESP tracking webhook body accepted (SparkPost's batches of ~1,000 events are
# under 2 MB); a larger one is refused with a 400 before it is read.
WEBHOOK_MAX_BYTES = env_int("WEBHOOK_MAX_BYTES", 4 * 1024 * 1024)
# DNS checks of the sending domains: how often, and which resolvers (empty: the system's).
DNS_CHECK_HOURS = env_int("DNS_CHECK_HOURS", 24)
DNS_NAMESERVERS = env_list("DNS_NAMESERVERS", [])
# How long one DNS question may take, retries included, before a check says "could not check".
DNS_LIFETIME_SECONDS = env_int("DNS_LIFETIME_SECONDS", 5)
# DNS blocklists (analytics.blocklists): the zones the sending IPs are looked up in, and those
# the link domains of a campaign are looked up in; empty turns a kind off. Spamhaus's public
# zones are free for low-volume non-commercial use only, and refuse queries that come through
# public resolvers (8.8.8.8, 1.1.1.1): commercial users get a free Data Query Service key and
# set its zones instead (<key>.zen.dq.spamhaus.net, <key>.dbl.dq.spamhaus.net). Barracuda
# answers registered resolvers only; URIBL and SURBL limit free query volume.
DNSBL_ZONES = env_list(
    "DNSBL_ZONES", ["zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org"]
)
URIBL_ZONES = env_list("URIBL_ZONES", ["dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com"])
BLOCKLIST_CHECK_HOURS = env_int("BLOCKLIST_CHECK_HOURS", 6)
# Bounces and complaints by mail, for SMTP senders (analytics.bounce_mail): the VERP domain of
# envelope senders (b+<delivery>@BOUNCE_DOMAIN; aligned with From's domain for DMARC), and the
# mailbox it delivers to, read over IMAP: imaps://user:password@host:993/INBOX (certificate
# verified), imap://... with STARTTLS, or imap+plain://... on loopback only.
BOUNCE_DOMAIN = env_str("BOUNCE_DOMAIN", "")
BOUNCE_IMAP_URL = env_str("BOUNCE_IMAP_URL", "")
BOUNCE_IMAP_DONE_FOLDER = env_str("BOUNCE_IMAP_DONE_FOLDER", "Processed")
BOUNCE_POLL_SECONDS = env_int("BOUNCE_POLL_SECONDS", 60)
# The bulk-sender readiness check (analytics.readiness) sends a seed message through a
# domain's connection to a mailbox of your own and reads it back over IMAP (same URL forms as
# BOUNCE_IMAP_URL; use its own mailbox, not the bounce mailbox, which would file it).
READINESS_SEED_ADDRESS = env_str("READINESS_SEED_ADDRESS", "")
READINESS_IMAP_URL = env_str("READINESS_IMAP_URL", "")
READINESS_WAIT_SECONDS = env_int("READINESS_WAIT_SECONDS", 120)
# Outgoing webhooks (webhooks/): posts in parallel per dispatcher, their timeout, how long one
# dispatch task works before handing over, how often beat looks for due retries, and after how
# many failed attempts in a row an endpoint is disabled (with an alert). Plain http:// is
# refused except to loopback when WEBHOOK_ALLOW_HTTP_LOOPBACK is True (tests, development).
WEBHOOK_CONCURRENCY = env_int("WEBHOOK_CONCURRENCY", 16)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
WEBHOOK_DISPATCH_SECONDS = env_int("WEBHOOK_DISPATCH_SECONDS", 50)
WEBHOOK_POLL_SECONDS = env_int("WEBHOOK_POLL_SECONDS", 5)
WEBHOOK_DISABLE_AFTER_FAILURES = env_int("WEBHOOK_DISABLE_AFTER_FAILURES", 50)
WEBHOOK_ALLOW_HTTP_LOOPBACK = env_bool("WEBHOOK_ALLOW_HTTP_LOOPBACK", False)
# Installed into django-celery-beat's database schedule when beat starts.
CELERY_BEAT_SCHEDULE = {
    "analytics-bounce-mailbox": {
        "task": "analytics.tasks.bounce_mailbox_poll",
        "schedule": float(BOUNCE_POLL_SECONDS),
    },
    "webhooks-dispatch": {
        "task": "webhooks.tasks.webhooks_dispatch",
        "schedule": float(WEBHOOK_POLL_SECONDS),
    },
    "analytics-flush-tracking": {
        "task": "analytics.tasks.tracking_flush",
        "schedule": float(TRACKING_FLUSH_SECONDS),
    },
    "analytics-dns-checks": {
        "task": "analytics.tasks.dns_check_all",
        "schedule": DNS_CHECK_HOURS * 3600.0,
    },
    "analytics-blocklists": {
        "task": "analytics.tasks.blocklists_check_all",
        "schedule": BLOCKLIST_CHECK_HOURS * 3600.0,
    },
    # Events' monthly partitions: the coming months made, the expired ones dropped.
    "analytics-event-partitions": {
        "task": "analytics.tasks.event_partitions_ensure",
        "schedule": 6 * 3600.0,
    },
    "analytics-event-retention": {
        "task": "analytics.tasks.event_partitions_drop_expired",
        "schedule": 24 * 3600.0,
    },
    "analytics-engagement-scores": {
        "task": "analytics.tasks.engagement_refresh",
        "schedule": 6 * 3600.0,
    },
    # An import whose worker died is queued again within this (its lock tells it died).
    "subscribers-resume-stalled-imports": {
        "task": "subscribers.tasks.imports_resume_stalled",
        "schedule": 20.0,
    },
}

# REST API (api/): how long an Idempotency-Key's answer is kept for replays.
API_IDEMPOTENCY_HOURS = env_int("API_IDEMPOTENCY_HOURS", 24)
CELERY_BEAT_SCHEDULE["api-idempotency-purge"] = {
    "task": "api.tasks.idempotency_records_purge",
    "schedule": 3600.0,
}
