"""Settings for the test run: Tandem's own, with a throw-away data folder.

pytest-django imports the settings module before any conftest.py is loaded, so the data
folder has to be chosen here, before `editor.settings` runs: it creates the folder and a
secret key in it at import time, and the tests must never touch ./data.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_data_dir = tempfile.mkdtemp(prefix="tandem-test-data-")
atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)
os.environ["TANDEM_DATA_DIR"] = _data_dir

from editor.settings import *  # noqa: E402, F403
from editor.settings import STATIC_ROOT, STORAGES  # noqa: E402

# The manifest storage needs collectstatic (which `serve` runs); unit tests render
# templates without it. tests/test_serve.py checks the real thing in a real process.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# whitenoise serves STATIC_ROOT, which `serve` fills; here it only has to exist.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)

# The test database is a file, like the one Tandem serves from, not Django's default
# in-memory database. That one is shared between threads through SQLite's shared cache,
# whose table locks fail at once ("database table is locked") instead of waiting out the
# busy timeout: a consumer's access check could collide with the store thread's commit, a
# failure no real server can have (WAL lets readers run beside the one writer).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(Path(_data_dir) / "test.sqlite3")}  # noqa: F405
