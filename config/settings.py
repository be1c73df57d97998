"""engage settings: one module, everything from the environment, safe first-run defaults.

Environment:
    SECRET_KEY      required when DEBUG is off
    DEBUG           "1"/"true" turns it on (default: on only when no SECRET_KEY is given)
    ALLOWED_HOSTS   comma-separated host names (default with DEBUG: localhost names)
    DATABASE_URL    e.g. postgres://user@host:5432/engage (default: SQLite file db.sqlite3)
    REDIS_URL       e.g. redis://127.0.0.1:6379/0 (default: none; jobs run in-process)
    CSRF_TRUSTED_ORIGINS, SECURE_SSL_REDIRECT, EMAIL_URL-free SMTP settings: see README.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


SECRET_KEY = os.environ.get("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", default=not SECRET_KEY)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Only ever used with DEBUG on, on a developer's machine.
    SECRET_KEY = "django-insecure-engage-development-only"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    "ninja",
    "engage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "engage.context_processors.notifications",
            ],
        },
    },
]
# Inputs, selects and labels drawn in Python (the same HTML as Django's templates, faster).
FORM_RENDERER = "engage.forms.renderer.FastTemplates"

# Database: SQLite file by default, anything dj-database-url understands otherwise.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg's pool: a new connection per request triples the cost of a small page.
    # The pool replaces persistent connections, so CONN_MAX_AGE must stay 0.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})
    # PostgreSQL's JIT compiles the dashboard's aggregates for ~300 ms before running them
    # in ~100: short queries over indexes are what engage runs, so it is off.
    DATABASES["default"]["OPTIONS"].setdefault("options", "-c jit=off")
    if env_bool("DATABASE_POOL", True):
        from psycopg_pool import ConnectionPool

        def check_pooled_connection(connection) -> None:
            """Test a connection before the pool lends it: one empty round trip.

            Without a check, a database restart or failover leaves dead connections in the
            pool and each is handed to one request, which fails with a 500. psycopg's own
            check alone is not enough: the pool waits 1, 2, 4… s between two failed checks
            for the same request, so with four or five dead connections the request times
            out. On finding a dead one, test all the idle ones at once (tests/test_faults.py).
            """
            try:
                ConnectionPool.check_connection(connection)
            except Exception:
                from django.db import connections

                connections["default"].pool.check()
                raise

        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": int(os.environ.get("DATABASE_POOL_MIN", "2")),
            "max_size": int(os.environ.get("DATABASE_POOL_MAX", "10")),
            "timeout": 10,
            # Django passes these to psycopg_pool.ConnectionPool as keyword arguments.
            "check": check_pooled_connection,
        }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the demo server and a management command share the file.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # The dashboard's covering indexes carry INCLUDE columns, which SQLite leaves out: the
    # indexes work there without them (PostgreSQL reads the figures from the index alone).
    SILENCED_SYSTEM_CHECKS = ["models.W040"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Jobs: django-rq on Redis when REDIS_URL is set, otherwise in-process on fakeredis.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    RQ_QUEUES = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 300}}
else:
    import fakeredis
    import redis

    RQ_QUEUES = {
        "default": {
            "ASYNC": False,
            # HOST and PORT are required by django-rq but unused: the pool below is in-memory.
            "HOST": "localhost",
            "PORT": 6379,
            "REDIS_CLIENT_KWARGS": {
                "connection_pool": redis.ConnectionPool(
                    connection_class=fakeredis.FakeRedisConnection,
                    server=fakeredis.FakeServer(),
                )
            },
        }
    }

# The cache (the failed-login counts of engage/views/login.py): on Redis when REDIS_URL is
# set, so that every gunicorn worker and web host shares one count; otherwise in this
# process's memory, which suits the embedded default's single process. Redis keeps the
# cache beside the job queue in one database: never call cache.clear() there (it empties the
# whole database, queued jobs included); delete keys instead.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "engage-cache",
            # A Redis that does not answer must not hold a login page for long.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# FRAGMENTS: parts of pages that are the same HTML for the same inputs (the queue's filter
# fields and bulk bar: the filters, the people offered, the language), kept in each web
# process's memory so that a page drawn again skips them ({% cache ... using="fragments" %},
# whose key names every input). Never anything personal, never a CSRF token.
CACHES["fragments"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "engage-fragments",
    "OPTIONS": {"MAX_ENTRIES": 2000},
}
ENGAGE_FRAGMENT_SECONDS = int(os.environ.get("ENGAGE_FRAGMENT_SECONDS", "600"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Failed logins (the login page and the admin's): from one client address, at most
# ENGAGE_LOGIN_FAILURE_LIMIT for one username and ENGAGE_LOGIN_FAILURE_LIMIT_PER_ADDRESS in
# all per window of ENGAGE_LOGIN_FAILURE_WINDOW_MINUTES; then attempts are refused until the
# window ends. Behind reverse proxies, ENGAGE_PROXY_COUNT says how many of them append to
# X-Forwarded-For (0: the client is REMOTE_ADDR), so that each client counts on its own.
ENGAGE_LOGIN_FAILURE_LIMIT = int(os.environ.get("ENGAGE_LOGIN_FAILURE_LIMIT", "5"))
ENGAGE_LOGIN_FAILURE_LIMIT_PER_ADDRESS = int(
    os.environ.get("ENGAGE_LOGIN_FAILURE_LIMIT_PER_ADDRESS", "50")
)
ENGAGE_LOGIN_FAILURE_WINDOW_MINUTES = int(
    os.environ.get("ENGAGE_LOGIN_FAILURE_WINDOW_MINUTES", "15")
)
ENGAGE_PROXY_COUNT = int(os.environ.get("ENGAGE_PROXY_COUNT", "0"))

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("it", _("Italian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/Rome")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security. Strict defaults; HTTPS settings switch on when DEBUG is off.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Load balancers check health over plain HTTP inside the network (SECURE_SSL_REDIRECT).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Email (Django 6.1's MAILERS). With DEBUG on, mail is printed to the console; otherwise
# it goes to the SMTP server named by EMAIL_HOST (default: the local MTA).
if DEBUG and not os.environ.get("EMAIL_HOST"):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
else:
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": os.environ.get("EMAIL_HOST", "localhost"),
                "port": int(os.environ.get("EMAIL_PORT", "25")),
                "username": os.environ.get("EMAIL_HOST_USER", ""),
                "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
                "use_tls": env_bool("EMAIL_USE_TLS", False),
                "timeout": 10,
            },
        }
    }
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "engage@localhost")
# Notifications (new evidence for a ticket's owner, follow-ups for assignees) are always
# shown in the app; with this on they are also emailed, from the job, to users who have an
# address. ENGAGE_SITE_URL (e.g. https://engage.example.com) makes the emails link back.
ENGAGE_EMAIL_NOTIFICATIONS = env_bool("ENGAGE_EMAIL_NOTIFICATIONS", False)
ENGAGE_SITE_URL = os.environ.get("ENGAGE_SITE_URL", "").rstrip("/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

# engage's own settings.
# First-response targets per priority, in hours (issue 6 makes them editable by staff).
ENGAGE_FIRST_RESPONSE_HOURS = {"urgent": 1, "high": 4, "normal": 24, "low": 72}
ENGAGE_PAGE_SIZE = 50
# The queue's stage tabs count up to this many matches, then show "1,000+"; on PostgreSQL
# the counts give up after this many milliseconds (the tabs then show no numbers).
ENGAGE_STAGE_COUNT_CAP = 1000
ENGAGE_STAGE_COUNT_TIMEOUT_MS = 300
# The most conversations one bulk action may change.
ENGAGE_BULK_LIMIT = 200

# Listening (issue 5).
# Feeds are fetched only from public addresses: a host named here may also resolve to a
# private, loopback or link-local address (an intranet forum; the tests' local server).
ENGAGE_FEED_ALLOWED_HOSTS = env_list("ENGAGE_FEED_ALLOWED_HOSTS", [])
ENGAGE_FEED_TIMEOUT_SECONDS = float(os.environ.get("ENGAGE_FEED_TIMEOUT_SECONDS", "10"))
ENGAGE_FEED_MAX_BYTES = int(os.environ.get("ENGAGE_FEED_MAX_BYTES", str(5 * 1024 * 1024)))
ENGAGE_FEED_MAX_REDIRECTS = 5
# Minutes between two polls of a feed unless the source says otherwise.
ENGAGE_FEED_INTERVAL_MINUTES = 15
# The push API's and the import's largest batch.
ENGAGE_INGEST_BATCH_LIMIT = 1000
# The same person posting the same text on the same source within this many minutes is
# kept as one conversation (the duplicate is recorded on it).
ENGAGE_DUPLICATE_WINDOW_MINUTES = int(os.environ.get("ENGAGE_DUPLICATE_WINDOW_MINUTES", "10"))
# A new negative message on a conversation past listen restarts it at listen.
ENGAGE_RESTART_ON_NEGATIVE = env_bool("ENGAGE_RESTART_ON_NEGATIVE", True)
# Round-robin assignment: the most open conversations a community manager who is marked
# available is given (each person's own cap, set in the admin, wins).
ENGAGE_ROUND_ROBIN_CAP = int(os.environ.get("ENGAGE_ROUND_ROBIN_CAP", "25"))
# An ingest batch of 1,000 posts with long texts is larger than Django's 2.5 MB default.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
