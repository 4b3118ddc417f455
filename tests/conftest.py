"""Fixtures for the unit and integration tests (pytest-django).

The settings are tests/settings.py (see pyproject.toml): Tandem's own, with a temporary
data folder and plain static file storage, chosen before Django is set up.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings

from collab import store
from editor.models import Document


@pytest.fixture(autouse=True, scope="session")
def _never_the_real_data_folder() -> None:
    assert settings.DATA_DIR != settings.BASE_DIR / "data", "tests must not touch ./data"


@pytest.fixture
def make_doc(db: None) -> Callable[..., Document]:
    """`make_doc(title, text)`: a stored document, made the way the app makes them."""

    def make(title: str = "Untitled", text: str = "") -> Document:
        return store.create_document(title, text)

    return make


def htmx(target: str | None = None) -> dict[str, str]:
    """The headers htmx sends with a request: `client.get(path, headers=htmx("id"))`."""
    headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver/"}
    if target:
        headers["HX-Target"] = target
    return headers
