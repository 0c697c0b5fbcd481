# The Python environment betascope lives in; sourced by scripts/setup, scripts/serve
# and scripts/test from the repository root, so all three agree on it:
#   1. the active virtualenv ($VIRTUAL_ENV) or conda env ($CONDA_PREFIX);
#   2. else the virtualenv whose python3 is first on PATH (e.g. a container's /venv);
#   3. else the project's own .venv, made with the first Python >= 3.11 on PATH
#      (or $PYTHON): a distribution's Python refuses `pip install` outside a
#      virtualenv (PEP 668), and a virtualenv never touches the system's packages.

BETASCOPE_MIN_PYTHON=3.11

# Sets BETASCOPE_PREFIX (the environment's root), BETASCOPE_PYTHON and BETASCOPE_WHERE
# (the environment in words). Creates nothing.
betascope_find_env() {
    local py
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        BETASCOPE_PREFIX=$VIRTUAL_ENV
        BETASCOPE_WHERE="the active virtualenv $VIRTUAL_ENV"
    elif [ -n "${CONDA_PREFIX:-}" ] && [ -x "$CONDA_PREFIX/bin/python" ]; then
        BETASCOPE_PREFIX=$CONDA_PREFIX
        BETASCOPE_WHERE="the active conda env $CONDA_PREFIX"
    elif py=$(command -v python3) \
        && "$py" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
        BETASCOPE_PREFIX=$("$py" -c 'import sys; print(sys.prefix)')
        BETASCOPE_WHERE="the virtualenv $BETASCOPE_PREFIX (its python3 is first on PATH)"
    else
        BETASCOPE_PREFIX=$PWD/.venv
        BETASCOPE_WHERE="$BETASCOPE_PREFIX"
    fi
    BETASCOPE_PYTHON=$BETASCOPE_PREFIX/bin/python
}

_betascope_version() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

_betascope_new_enough() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

# The first Python >= 3.11 on PATH (or $PYTHON), printed; one message and status 1
# when there is none.
betascope_base_python() {
    local cand py ver seen=""
    for cand in ${PYTHON:-python3 python3.14 python3.13 python3.12 python3.11 python}; do
        py=$(command -v "$cand") || continue
        if _betascope_new_enough "$py"; then
            echo "$py"
            return 0
        fi
        ver=$(_betascope_version "$py") || ver="unknown version"
        seen="$seen, $py ($ver)"
    done
    seen=${seen#, }
    echo "error: betascope needs Python $BETASCOPE_MIN_PYTHON or newer; found ${seen:-no Python on PATH}." \
        "Install Python $BETASCOPE_MIN_PYTHON+ (Debian 12, Ubuntu 23.04 and later:" \
        "apt install python3 python3-venv; older systems: pyenv, conda or" \
        "https://www.python.org/downloads/) and run this again," \
        "or name one with PYTHON=/path/to/python3.11." >&2
    return 1
}

# Finds the environment and, when it is the project's .venv, creates it if it is
# missing or broken (interrupted creation, or its base Python gone).
betascope_ensure_env() {
    local base ver
    betascope_find_env
    if [ "$BETASCOPE_PREFIX" != "$PWD/.venv" ]; then
        if ! _betascope_new_enough "$BETASCOPE_PYTHON"; then
            ver=$(_betascope_version "$BETASCOPE_PYTHON") || ver="a broken Python"
            echo "error: betascope needs Python $BETASCOPE_MIN_PYTHON or newer, and" \
                "$BETASCOPE_WHERE has $ver. Leave it (deactivate) so that scripts/setup" \
                "makes the project's .venv, or activate one with Python $BETASCOPE_MIN_PYTHON+." >&2
            return 1
        fi
        return 0
    fi
    if "$BETASCOPE_PYTHON" -c 'import pip' 2>/dev/null; then
        return 0
    fi
    base=$(betascope_base_python) || return 1
    if ! "$base" -c 'import ensurepip, venv' 2>/dev/null; then
        ver=$(_betascope_version "$base")
        echo "error: $base (Python $ver) cannot create a virtualenv: its venv module is" \
            "missing. Install it (Debian/Ubuntu: apt install python$ver-venv) and run this again." >&2
        return 1
    fi
    # name the interpreter itself, not a launcher such as a pyenv shim
    base=$("$base" -c 'import sys; print(sys.executable)')
    echo "betascope: creating $BETASCOPE_PREFIX with $base" >&2
    "$base" -m venv --clear "$BETASCOPE_PREFIX"
}

# Puts the environment's commands (betascope, python, pytest, ruff, mypy) first on PATH.
betascope_activate() {
    betascope_find_env
    if [ "$BETASCOPE_PREFIX" = "$PWD/.venv" ]; then
        export VIRTUAL_ENV=$BETASCOPE_PREFIX
    fi
    export PATH="$BETASCOPE_PREFIX/bin:$PATH"
    hash -r
}
