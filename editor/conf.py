"""Every setting Tandem reads from the environment, declared once as data.

`SETTINGS` are what people who run Tandem set; README's Options section lists each one
(tests/test_settings_documented.py checks that both agree). `DEVELOPER_SETTINGS` only
steer the tests and the benchmark; README's "Test it" section lists them.

Values are read through the typed getters (`DEBUG.get()`, `LEASE_SECONDS.get()`), never
with `os.environ` elsewhere, so that a name, its default and its parsing live here only.
A value that cannot be parsed stops the process with the variable's name in the error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class Setting:
    """One environment variable. `default` is the text used when it is unset or empty;
    `shown_default` is how the docs describe a default computed at run time."""

    name: str
    help: str
    default: str = ""
    shown_default: str = ""

    @property
    def documented_default(self) -> str:
        return self.shown_default or self.default

    def raw(self, environ: Mapping[str, str] | None = None) -> str:
        """The variable's text, or the default when it is unset or empty."""
        value = (os.environ if environ is None else environ).get(self.name, "").strip()
        return value or self.default

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        return bool((os.environ if environ is None else environ).get(self.name, "").strip())

    def invalid(self, value: str, expected: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{self.name}={value!r}: expected {expected}")


@dataclass(frozen=True)
class StrSetting(Setting):
    def get(self, environ: Mapping[str, str] | None = None) -> str:
        return self.raw(environ)


@dataclass(frozen=True)
class BoolSetting(Setting):
    def get(self, environ: Mapping[str, str] | None = None) -> bool:
        value = self.raw(environ).lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise self.invalid(value, "1/0, true/false, yes/no or on/off")


@dataclass(frozen=True)
class IntSetting(Setting):
    minimum: int = 0

    def get(self, environ: Mapping[str, str] | None = None) -> int:
        value = self.raw(environ)
        try:
            number = int(value)
        except ValueError:
            raise self.invalid(value, "a whole number") from None
        if number < self.minimum:
            raise self.invalid(value, f"a number of at least {self.minimum}")
        return number


@dataclass(frozen=True)
class FloatSetting(Setting):
    def get(self, environ: Mapping[str, str] | None = None) -> float:
        value = self.raw(environ)
        try:
            number = float(value)
        except ValueError:
            raise self.invalid(value, "a number of seconds") from None
        # NaN and infinity would make every deadline computed from it meaningless.
        if not 0 < number < float("inf"):
            raise self.invalid(value, "a positive number of seconds")
        return number


@dataclass(frozen=True)
class ListSetting(Setting):
    def get(self, environ: Mapping[str, str] | None = None) -> list[str]:
        return [item.strip() for item in self.raw(environ).split(",") if item.strip()]


@dataclass(frozen=True)
class PathSetting(Setting):
    def get(self, environ: Mapping[str, str] | None = None, *, base: Path) -> Path:
        """The path, relative ones taken from the current folder; `base` when unset."""
        return Path(self.raw(environ) or base).resolve()


# -- what people who run Tandem set ------------------------------------------------------
DATA_DIR = PathSetting(
    "TANDEM_DATA_DIR",
    "Where the SQLite database, the generated secret key and the collected static files "
    "live. Back this folder up.",
    shown_default="data/ beside manage.py",
)
DATABASE_URL = StrSetting(
    "TANDEM_DATABASE_URL",
    "The database, as a URL: postgres://user:password@host:5432/name for PostgreSQL "
    "(needed to run several processes), or sqlite:////absolute/path.sqlite3.",
    shown_default="SQLite in the data folder",
)
REDIS_URL = StrSetting(
    "TANDEM_REDIS_URL",
    "Redis as the channel layer (redis://host:6379/0), so that several processes reach "
    "each other's editors.",
    shown_default="in-memory, one process",
)
SECRET_KEY = StrSetting(
    "TANDEM_SECRET_KEY",
    "Django's secret key. Every process of one Tandem must have the same one.",
    shown_default="generated once into the data folder",
)
OWNER_KEY = StrSetting(
    "TANDEM_OWNER_KEY",
    "The owner key (the owner link's ?owner= and scripts' Bearer token), at least 22 "
    "characters. Every process of one Tandem must have the same one.",
    shown_default="generated once into the data folder as owner.key",
)
HOST = StrSetting(
    "TANDEM_HOST",
    "The address `manage.py serve` listens on when --host is not given.",
    default="127.0.0.1",
)
PORT = IntSetting(
    "PORT",
    "The port `manage.py serve` listens on when --port is not given (what Procfile runners set).",
    default="8000",
)
ALLOWED_HOSTS = ListSetting(
    "TANDEM_ALLOWED_HOSTS",
    "Comma-separated host names the server answers to. When unset and serving on a "
    "non-loopback address, any name.",
    default="localhost,127.0.0.1,[::1]",
)
BEHIND_PROXY = BoolSetting(
    "TANDEM_BEHIND_PROXY",
    "Set to 1 when the processes are reached only through a reverse proxy that ends TLS: "
    "requests it marks X-Forwarded-Proto: https count as secure (without it, Django's "
    "CSRF check refuses the forms of an https page).",
    default="0",
)
TRUST_LOOPBACK = BoolSetting(
    "TANDEM_TRUST_LOOPBACK",
    "Requests from this machine (127.0.0.1, ::1) are the owner's, no sign-in needed. Set to "
    "0 behind a reverse proxy on the same machine (and in tests): the owner then signs in "
    "with the owner link `serve` prints (docs/security.md).",
    default="1",
)
DEBUG = BoolSetting("TANDEM_DEBUG", "Django's debug mode, for development only.", default="0")
LOG_LEVEL = StrSetting(
    "TANDEM_LOG_LEVEL",
    "How much Tandem logs: DEBUG, INFO, WARNING or ERROR.",
    default="INFO",
)
ROOM_IDLE_SECONDS = FloatSetting(
    "TANDEM_ROOM_IDLE_SECONDS",
    "How long a document's live room stays loaded after its last editor left.",
    default="30",
)
LEASE_SECONDS = FloatSetting(
    "TANDEM_LEASE_SECONDS",
    "How long a process owns a document without renewing its lease: after a crash, "
    "another process takes the document over within this time.",
    default="5",
)
PING_SECONDS = FloatSetting(
    "TANDEM_PING_SECONDS",
    "How long a WebSocket may be quiet before the server pings it; a browser that does not "
    "answer within 1.5 times this (a sleeping laptop, a pulled cable) is disconnected and "
    "leaves presence: with the default, within 30 s.",
    default="10",
)

SETTINGS: tuple[Setting, ...] = (
    DATA_DIR,
    DATABASE_URL,
    REDIS_URL,
    SECRET_KEY,
    OWNER_KEY,
    HOST,
    PORT,
    ALLOWED_HOSTS,
    BEHIND_PROXY,
    TRUST_LOOPBACK,
    DEBUG,
    LOG_LEVEL,
    ROOM_IDLE_SECONDS,
    LEASE_SECONDS,
    PING_SECONDS,
)

# -- what only the tests and the benchmark read ------------------------------------------
CHROMIUM = StrSetting(
    "TANDEM_CHROMIUM",
    "The Chromium the end-to-end tests launch (scripts/test sets it).",
    shown_default="Playwright's own, else chromium on the PATH",
)
BENCH_REPO = StrSetting(
    "TANDEM_BENCH_REPO",
    "The checkout whose server the benchmark starts.",
    shown_default="this checkout",
)
BENCH_PEERS = StrSetting(
    "TANDEM_BENCH_PEERS",
    "Where the benchmark finds the other sync servers it compares with.",
    shown_default="../shared/bench-peers",
)

DEVELOPER_SETTINGS: tuple[Setting, ...] = (CHROMIUM, BENCH_REPO, BENCH_PEERS)


# -- the database --------------------------------------------------------------------------
def _sqlite_options() -> dict[str, Any]:
    return {
        # synchronous=FULL: a commit is on disk before the editor is told (NORMAL in WAL
        # mode may lose the last commits on power loss). Group commits keep it cheap.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=20000;"
        ),
    }


def database(url: str, data_dir: Path) -> dict[str, Any]:
    """Django's DATABASES["default"] for `url` ("" is SQLite in `data_dir`).

    Both backends keep one long-lived connection per thread (CONN_MAX_AGE None): a new
    connection per commit was a measurable share of server time in the trial build.
    """
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": data_dir / "tandem.sqlite3",
            "CONN_MAX_AGE": None,
            "OPTIONS": _sqlite_options(),
        }
    import dj_database_url

    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=None))
    except ValueError as error:
        raise DATABASE_URL.invalid(url, f"a database URL ({error})") from None
    engine = config.get("ENGINE", "")
    options = dict(config.get("OPTIONS") or {})
    if engine == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**_sqlite_options(), **options}
    elif engine == "django.db.backends.postgresql":
        config["OPTIONS"] = {
            # Fail a connection attempt in seconds rather than hang every request on an
            # unreachable server; the URL's own query parameters win.
            "connect_timeout": 10,
            "application_name": "tandem",
            **options,
        }
        # A persistent connection that the server dropped (restart, failover) is
        # noticed at the next request instead of failing it.
        config["CONN_HEALTH_CHECKS"] = True
    else:
        raise DATABASE_URL.invalid(url, "a postgres:// or sqlite:// URL")
    return config


# -- the channel layer ---------------------------------------------------------------------
# Room for bursts in the in-memory layer. A lost message is still caught: every message
# that moves a document carries its version, and a gap is filled from the database.
CHANNEL_CAPACITY = 10_000
CHANNEL_EXPIRY = 60
# redis-py 8 reads with a 5 s timeout by default; a dead Redis shows within this instead.
REDIS_READ_TIMEOUT = 15.0


def channel_layer(redis_url: str) -> dict[str, Any]:
    """Django's CHANNEL_LAYERS["default"]: Redis when `redis_url` is set, else in memory.

    On Redis, channels-redis's pub/sub layer: a message is one PUBLISH, and a group
    message reaches each process once (it subscribed to the group), which hands it to
    its own editors; a room call and its reply are one PUBLISH each. Its only weakness,
    that what is published while a process reconnects to Redis is lost, Tandem's
    protocol makes up for: calls without a reply are asked again, and every message
    that moves a document names versions, so a gap is noticed and filled by a sync.
    (channels-redis's list-based layer cost 3-4 Redis round trips per message and
    funnels all of a process's receives through one blocking pop: ten times the
    latency at 100 editors split over two processes, docs/benchmarks.md.)"""
    if redis_url:
        return {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": redis_url, "socket_timeout": REDIS_READ_TIMEOUT}]},
        }
    return {
        # Channels' own layer, minus two O(channels) costs per message.
        "BACKEND": "collab.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": CHANNEL_CAPACITY, "expiry": CHANNEL_EXPIRY},
    }
