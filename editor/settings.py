"""Django settings for Tandem. Everything comes from the environment, with safe local
defaults; every variable is declared once in editor/conf.py (name, default, help) and
listed in README's Options section.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from editor import conf, headers

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = conf.DATA_DIR.get(base=BASE_DIR / "data")
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """A key generated once per data folder, so it is never committed or shared."""
    if key := conf.SECRET_KEY.get():
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = conf.DEBUG.get()
ALLOWED_HOSTS = conf.ALLOWED_HOSTS.get()

INSTALLED_APPS = [
    "daphne",  # first: gives `runserver` an ASGI server
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "csp",
    "channels",
    "django_htmx",
    "editor",
    "collab",
]

MIDDLEWARE = [
    # The browser defences first, so static files and early refusals get them too.
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "editor.limits.body_limit",  # before anything reads a body
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
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

DATABASES = {"default": conf.database(conf.DATABASE_URL.get(), DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS = {"default": conf.channel_layer(conf.REDIS_URL.get())}

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

if conf.BEHIND_PROXY.get():
    # TLS ends at the proxy: trust its word that the browser's request was https.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Browser defences on every response (docs/security.md, "Browser defences"). Django's
# SecurityMiddleware sends nosniff, Referrer-Policy and COOP; django-csp the CSP; the
# responses Django never sees (the live view's event stream) get the same from
# editor/headers.py.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {"DIRECTIVES": headers.CSP_DIRECTIVES}
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it to send X-CSRFToken

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "tandem": {"level": conf.LOG_LEVEL.get().upper()},
        "daphne": {"level": "WARNING"},
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024  # the API accepts documents up to 16 MiB
DATA_UPLOAD_MAX_NUMBER_FILES = 100  # files in one import (Django's default, said out loud)


# Requests from loopback are the owner's (docs/security.md); "0" behind a local reverse proxy.
TANDEM_TRUST_LOOPBACK = conf.TRUST_LOOPBACK.get()

# A document's live room is unloaded this many seconds after its last editor left.
TANDEM_ROOM_IDLE_SECONDS = conf.ROOM_IDLE_SECONDS.get()
# How long a process owns a document (runs its room) without renewing its lease.
TANDEM_LEASE_SECONDS = conf.LEASE_SECONDS.get()
