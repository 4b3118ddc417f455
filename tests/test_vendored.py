"""The vendored CodeMirror bundle (static/vendor/codemirror/, written by
scripts/vendor-codemirror) against what static/js/ imports from it: a module that starts
importing a name the bundle does not export would fail in the browser, at page load."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENDORED = REPO / "static" / "vendor" / "codemirror"
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
IMPORT = re.compile(r"""\bimport\s+\{([^}]*)\}\s*from\s*["']([^"'./][^"']*)["']""")
# Every other way to name a package: a side-effect, default or namespace import, a
# re-export, a dynamic import. The bundle serves named imports only.
OTHER_USE = re.compile(
    r"""^\s*import\s*["'][^"'./]"""  # import "pkg"
    r"""|^\s*import\s+[^{"'\s][^;]*?\bfrom\s*["'][^"'./]"""  # import x / * as x from "pkg"
    r"""|^\s*export\s*(?:\*|\{[^}]*\})\s*(?:as\s+\w+\s*)?from\s*["'][^"'./]"""  # re-export
    r"""|\bimport\s*\(\s*["'][^"'./]""",  # import("pkg")
    re.MULTILINE,
)


def vendored_imports() -> dict[str, set[str]]:
    """Package name -> the names static/js/ imports from it (bare specifiers only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "static" / "js").glob("*.js")):
        # without comments (JSDoc types say import("@codemirror/state").Text)
        source = COMMENT.sub("", path.read_text())
        other = OTHER_USE.search(source)
        assert not other, f"{path.name}: {other.group(0)!r}: import named exports only"
        for names, package in IMPORT.findall(source):
            parts = (n.strip().split(" as ")[0].strip() for n in names.split(","))
            found.setdefault(package, set()).update(p for p in parts if p)
    return found


def bundle_exports() -> set[str]:
    text = (VENDORED / "codemirror.js").read_text()
    (block,) = re.findall(r"^export \{([^}]*)\};\s*$", text, re.MULTILINE)
    # esbuild writes `local as exported` where it had to rename a binding
    return {name.split(" as ")[-1].strip() for name in block.split(",") if name.strip()}


def test_the_bundle_exports_every_name_static_js_imports() -> None:
    imports = vendored_imports()
    assert "@codemirror/view" in imports and "EditorView" in imports["@codemirror/view"]
    wanted = set().union(*imports.values())
    missing = wanted - bundle_exports()
    assert not missing, f"run scripts/vendor-codemirror: codemirror.js lacks {sorted(missing)}"


def test_the_import_map_sends_exactly_those_packages_to_the_bundle() -> None:
    template = (REPO / "templates" / "editor" / "_vendor_imports.html").read_text()
    mapped = dict(re.findall(r'"([^"]+)": "\{% static \'([^\']+)\' %\}"', template))
    assert set(mapped) == set(vendored_imports())
    assert set(mapped.values()) == {"vendor/codemirror/codemirror.js"}


def test_every_bundled_package_has_its_version_and_licence() -> None:
    versions = (VENDORED / "VERSIONS").read_text().splitlines()
    packages = [line.split()[0] for line in versions if line and not line.startswith("#")]
    licences = (VENDORED / "LICENSES").read_text()
    assert "@codemirror/view" in packages and "@lezer/markdown" in packages
    bundle = (VENDORED / "codemirror.js").read_text()
    for package in packages:
        assert f"== {package} " in licences, package
        # esbuild names each package's code by its path in node_modules
        assert f"// node_modules/{package}/" in bundle, package
