"""Every setting is declared once (editor/conf.py) and README agrees with the declarations,
both ways; no code or script reads a TANDEM_ variable that is not declared."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from editor import conf

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()

# "- `NAME` (default: TEXT): help", TEXT possibly wrapped in backticks and over lines.
ENTRY = re.compile(r"^- `([A-Z][A-Z0-9_]*)` \(default: ([^)]*)\):", re.MULTILINE)
USED = re.compile(r"\bTANDEM_[A-Z0-9_]*[A-Z0-9]\b")

TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".js", ".html", ".txt", ".cfg", ".ini", ".yml"}
SKIPPED_DIRS = {"data", "node_modules", "__pycache__", "results", "test-results"}


def section(title: str) -> str:
    """README's section `## title`, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def documented(title: str) -> dict[str, str]:
    """name -> default, as the section lists them (backticks and line breaks removed)."""
    return {
        name: " ".join(default.replace("`", "").split())
        for name, default in ENTRY.findall(section(title))
    }


@pytest.mark.parametrize(
    ("title", "declared"),
    [("Options", conf.SETTINGS), ("Test it", conf.DEVELOPER_SETTINGS)],
    ids=["settings", "developer-settings"],
)
def test_readme_lists_every_declared_setting_and_nothing_else(
    title: str, declared: tuple[conf.Setting, ...]
) -> None:
    in_readme = documented(title)
    names = [setting.name for setting in declared]
    assert len(names) == len(set(names)), "a setting is declared twice"
    assert set(in_readme) == set(names), (
        f"README ({title}) lists {sorted(set(in_readme) - set(names))} that editor/conf.py "
        f"does not declare, and misses {sorted(set(names) - set(in_readme))}"
    )
    for setting in declared:
        assert in_readme[setting.name] == setting.documented_default, setting.name


def test_every_setting_has_help_and_a_default_to_show() -> None:
    for setting in (*conf.SETTINGS, *conf.DEVELOPER_SETTINGS):
        assert setting.help.strip().endswith("."), setting.name
        assert setting.documented_default, f"{setting.name}: say what happens when it is unset"


def source_files() -> Iterator[Path]:
    for path in sorted(REPO.rglob("*")):
        relative = path.relative_to(REPO)
        parts = relative.parts
        if any(p.startswith(".") and p != ".ci" for p in parts[:-1]):
            continue  # .git, .venv, caches (but .ci/run is code)
        if SKIPPED_DIRS & set(parts[:-1]) or not path.is_file():
            continue
        if (
            path.suffix in TEXT_SUFFIXES
            or parts[0] in {"scripts", ".ci"}
            or path.name == "Procfile"
        ):
            yield path


def test_every_tandem_variable_in_code_docs_and_scripts_is_declared() -> None:
    declared = {s.name for s in (*conf.SETTINGS, *conf.DEVELOPER_SETTINGS)}
    unknown: dict[str, list[str]] = {}
    scanned = 0
    for path in source_files():
        scanned += 1
        for name in set(USED.findall(path.read_text(errors="replace"))):
            if name not in declared:
                unknown.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert scanned > 50, "the scan found too few files to be looking in the right place"
    assert not unknown, f"used but not declared in editor/conf.py: {unknown}"


def test_every_declared_variable_is_used_somewhere_besides_conf_and_docs() -> None:
    """A declaration nobody reads is a setting that silently does nothing."""
    code = "\n".join(
        p.read_text(errors="replace")
        for p in source_files()
        if p.suffix != ".md" and p.name not in {"conf.py", "test_settings_documented.py"}
    )
    for setting in (*conf.SETTINGS, *conf.DEVELOPER_SETTINGS):
        constant = next(k for k, v in vars(conf).items() if v is setting and k.isupper())
        assert setting.name in code or f"conf.{constant}" in code, setting.name
