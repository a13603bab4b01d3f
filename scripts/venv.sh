# Shared by quickstart.sh and test.sh: make .venv with Python >= 3.11 and install scorepub.
ensure_venv() {
    local extras=$1
    local py=${PYTHON:-python3}
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "error: scorepub needs Python 3.11 or newer ($py is $("$py" -V 2>&1))" >&2
        exit 1
    fi
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
}
