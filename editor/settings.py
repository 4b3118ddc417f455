"""Settings for Tandem. Everything comes from the environment, with safe local defaults.

TANDEM_DATA_DIR      where the database and the generated secret key live (default: ./data)
TANDEM_DEBUG         "1" turns Django's debug mode on (default: off)
TANDEM_ALLOWED_HOSTS comma-separated host names (default: localhost names; `serve` widens it
                     when asked to listen on another interface)
TANDEM_DATABASE_URL  not supported on purpose: edit DATABASES below for another database
TANDEM_REDIS_URL     use Redis as the channel layer instead of the in-memory one
TANDEM_TRUST_LOOPBACK "0" makes requests from this machine (127.0.0.1, ::1) guests like any
                     other: for a reverse proxy on the same machine, and for tests. Default
                     "1": the person at the computer is the owner, no sign-in needed.
                     (docs/security.md)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("TANDEM_DATA_DIR", BASE_DIR / "data")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """A key generated once per data folder, so it is never committed or shared."""
    if key := os.environ.get("TANDEM_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("TANDEM_DEBUG", "") in {"1", "true", "yes", "on"}
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("TANDEM_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "daphne",  # first: gives `runserver` an ASGI server
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "editor",
    "collab",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "editor.urls"
ASGI_APPLICATION = "editor.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "tandem.sqlite3",
        # synchronous=FULL: a commit is on disk before the editor is told (NORMAL in WAL
        # mode may lose the last commits on power loss). Group commits keep it cheap.
        # One long-lived connection per thread: a new SQLite connection per commit was a
        # measurable share of server time in the trial build.
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=20000;"
            ),
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if redis_url := os.environ.get("TANDEM_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "capacity": 10_000},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            # Sized for bursts; a dropped message never loses an edit (the next sync
            # catches up). Channels' own layer, minus two O(channels) costs per message.
            "BACKEND": "collab.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 10_000, "expiry": 60},
        }
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_MAX_AGE = 3600

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it to send X-CSRFToken

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "tandem": {"level": os.environ.get("TANDEM_LOG_LEVEL", "INFO")},
        "daphne": {"level": "WARNING"},
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024  # the API accepts documents up to 16 MiB


def _flag(name: str, default: bool) -> bool:
    """A yes/no setting; anything unrecognised stops the server rather than guess."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0 (got {value!r})")


# Requests from loopback are the owner's (docs/security.md); "0" behind a local reverse proxy.
TANDEM_TRUST_LOOPBACK = _flag("TANDEM_TRUST_LOOPBACK", True)

# A document's live room is unloaded this many seconds after its last editor left.
TANDEM_ROOM_IDLE_SECONDS = float(os.environ.get("TANDEM_ROOM_IDLE_SECONDS", "30"))
