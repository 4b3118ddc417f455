"""editor/conf.py: the typed getters and the database configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from editor import conf


def test_unset_and_empty_mean_the_default() -> None:
    assert conf.LEASE_SECONDS.get({}) == 5.0
    assert conf.LEASE_SECONDS.get({"TANDEM_LEASE_SECONDS": "  "}) == 5.0
    assert conf.LEASE_SECONDS.get({"TANDEM_LEASE_SECONDS": "0.5"}) == 0.5
    assert conf.PORT.get({}) == 8000
    assert conf.HOST.get({}) == "127.0.0.1"
    assert conf.ALLOWED_HOSTS.get({}) == ["localhost", "127.0.0.1", "[::1]"]
    assert conf.ALLOWED_HOSTS.get({"TANDEM_ALLOWED_HOSTS": " a.example, ,b "}) == [
        "a.example",
        "b",
    ]
    assert not conf.ALLOWED_HOSTS.is_set({"TANDEM_ALLOWED_HOSTS": ""})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", False), ("0", False), ("off", False), ("1", True), ("TRUE", True), ("yes", True)],
)
def test_booleans(text: str, expected: bool) -> None:
    assert conf.DEBUG.get({"TANDEM_DEBUG": text}) is expected


@pytest.mark.parametrize(
    ("setting", "text"),
    [
        (conf.DEBUG, "maybe"),
        (conf.LEASE_SECONDS, "five"),
        (conf.LEASE_SECONDS, "0"),
        (conf.LEASE_SECONDS, "-1"),
        (conf.LEASE_SECONDS, "nan"),
        (conf.ROOM_IDLE_SECONDS, "inf"),
        (conf.PORT, "http"),
        (conf.PORT, "-1"),
    ],
)
def test_a_bad_value_names_the_variable(setting: conf.Setting, text: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=setting.name):
        setting.get({setting.name: text})  # type: ignore[attr-defined]


def test_the_default_database_is_sqlite_in_the_data_folder_as_before(tmp_path: Path) -> None:
    db = conf.database("", tmp_path)
    assert db == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": tmp_path / "tandem.sqlite3",
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=20000;"
            ),
        },
    }
    # And it is what this test run uses.
    assert settings.DATABASES["default"]["OPTIONS"] == db["OPTIONS"]
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] is None


def test_a_sqlite_url_keeps_the_same_durability_options(tmp_path: Path) -> None:
    db = conf.database(f"sqlite:///{tmp_path}/other.sqlite3", tmp_path)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == f"{tmp_path}/other.sqlite3"
    assert db["CONN_MAX_AGE"] is None
    assert "synchronous=FULL" in db["OPTIONS"]["init_command"]
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_a_postgres_url(tmp_path: Path) -> None:
    db = conf.database("postgres://tandem:s3cret@db.internal:6543/docs", tmp_path)
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "docs",
        "tandem",
        "s3cret",
        "db.internal",
        6543,
    )
    assert db["CONN_MAX_AGE"] is None
    assert db["CONN_HEALTH_CHECKS"] is True
    assert db["OPTIONS"] == {"connect_timeout": 10, "application_name": "tandem"}


def test_a_postgres_url_may_override_the_options_and_use_a_socket(tmp_path: Path) -> None:
    db = conf.database("postgresql://postgres@%2Frun%2Fpg/docs?connect_timeout=3", tmp_path)
    assert db["HOST"] == "/run/pg"
    assert db["OPTIONS"]["connect_timeout"] == 3


@pytest.mark.parametrize("url", ["mysql://u@h/db", "nonsense"])
def test_other_databases_are_refused_by_name(url: str, tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="TANDEM_DATABASE_URL"):
        conf.database(url, tmp_path)


def test_settings_expose_the_lease_and_the_idle_time() -> None:
    assert isinstance(settings.TANDEM_LEASE_SECONDS, float)
    assert settings.TANDEM_LEASE_SECONDS > 0
    assert isinstance(settings.TANDEM_ROOM_IDLE_SECONDS, float)


def test_a_shared_owner_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from editor import credentials

    shared = "k" * 30
    monkeypatch.setenv("TANDEM_OWNER_KEY", shared)
    credentials.owner_key.cache_clear()
    try:
        assert credentials.owner_key() == shared
        assert credentials.is_owner_key(shared)
        monkeypatch.setenv("TANDEM_OWNER_KEY", "too-short")
        credentials.owner_key.cache_clear()
        with pytest.raises(ImproperlyConfigured, match="TANDEM_OWNER_KEY") as error:
            credentials.owner_key()
        assert "too-short" not in str(error.value)
    finally:
        monkeypatch.delenv("TANDEM_OWNER_KEY")
        credentials.owner_key.cache_clear()
    assert credentials.owner_key() != shared  # the data folder's own again
