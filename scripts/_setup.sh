# shellcheck shell=bash
# Shared by scripts/run and scripts/test: make .venv in the repository and install Tandem.
# Sourced, not run. Works on a fresh Debian/Ubuntu with only Python 3.11+, with or without
# a terminal (CI=true, no standard input).

say() { printf '%s\n' "==> $*" >&2; }
die() { printf '%s\n' "error: $*" >&2; exit 1; }

SUDO_NOTE=""
[ "$(id -u)" -ne 0 ] && SUDO_NOTE=" (through sudo)"

# Run a command as root: directly when we are root, else through sudo without a prompt
# when there is no terminal (CI), with a prompt when there is one.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ] && [ -z "${CI:-}" ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        return 1
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
        say "Cannot install $* with apt-get: not root, and no sudo"
        return 1
    fi
    say "Installing $* with apt-get${SUDO_NOTE:-}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq && as_root apt-get install -y -qq "$@"
}

# The first Python that is 3.11 or newer: $PYTHON if set, else python3, python3.13, ...
find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# A venv needs the venv module and ensurepip (Debian ships them in python3-venv).
ensure_venv_module() {
    local python=$1 version
    "$python" -c 'import venv, ensurepip' 2>/dev/null && return 0
    version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    say "Python's venv module is missing; installing python3-venv"
    apt_install python3-venv || apt_install "python${version}-venv" || die \
        "cannot create a virtual environment: Python's venv module (with ensurepip) is missing.
Install it as root, e.g. 'apt-get install python3-venv' (or python${version}-venv), then run this again."
    "$python" -c 'import venv, ensurepip' 2>/dev/null ||
        die "python3-venv is installed but '$python -m venv' still cannot work; install python${version}-venv."
}

# ensure_venv EXTRAS: .venv exists and has Tandem installed with EXTRAS ("" or "test").
# Fast when nothing changed: pip runs only when pyproject.toml's hash differs from the
# stamp written by the last successful install.
ensure_venv() {
    local extras=$1 python hash spec stamp
    if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say ".venv is broken or too old; making it again"
        rm -rf .venv
    fi
    if [ ! -x .venv/bin/python ]; then
        python=$(find_python) || die "Tandem needs Python 3.11 or newer (python3 --version); install it first."
        ensure_venv_module "$python"
        say "Creating .venv with $("$python" --version 2>&1)"
        rm -rf .venv
        "$python" -m venv .venv || die "'$python -m venv .venv' failed"
    fi
    hash=$(.venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
    # An install with the test extras also satisfies a plain run.
    for stamp in ".venv/.tandem-installed-${extras:-base}" ".venv/.tandem-installed-test"; do
        if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
            return 0
        fi
        [ -n "$extras" ] && break
    done
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    say "Installing Tandem${extras:+ with its $extras dependencies} into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" ||
        die "pip install -e '$spec' failed (see above)"
    printf '%s\n' "$hash" >".venv/.tandem-installed-${extras:-base}"
}
