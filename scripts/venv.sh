# Shared by quickstart.sh and test.sh: make .venv with Python >= 3.11 and install scorepub.

# As root, sandboxed workers drop to unprivileged uids that must still read the interpreter's
# standard library: skip a Python installed inside a private folder (such as pyenv's in /root).
readable_by_all='
import os, stat, sys, sysconfig
path = os.path.realpath(sysconfig.get_paths()["stdlib"])
while path != "/":
    if not os.stat(path).st_mode & stat.S_IXOTH:
        sys.exit(1)
    path = os.path.dirname(path)
'

pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    local py
    for py in python3 python3.13 python3.12 python3.11 /usr/bin/python3; do
        command -v "$py" >/dev/null 2>&1 || continue
        "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || continue
        if [ "$(id -u)" = 0 ] && ! "$py" -c "$readable_by_all" 2>/dev/null; then continue; fi
        echo "$py"; return
    done
    echo "error: scorepub needs Python 3.11 or newer (readable by other users when run as root)" >&2
    exit 1
}

# As root the workers also read .venv's site-packages: every folder above it must be
# traversable by other users. CI's throw-away clone folders are opened up (o+x: traverse, not
# list); anywhere else we stop and say what to do rather than change a user's permissions.
ensure_traversable() {
    [ "$(id -u)" = 0 ] || return 0
    local dir=$PWD closed=()
    while [ "$dir" != "/" ]; do
        [ -n "$(find "$dir" -maxdepth 0 -perm -o+x)" ] || closed+=("$dir")
        dir=$(dirname "$dir")
    done
    [ ${#closed[@]} -eq 0 ] && return 0
    if [ "${CI:-}" = "true" ]; then
        echo "making ${closed[*]} traversable for the sandbox uids (CI checkout)" >&2
        chmod o+x "${closed[@]}"
    else
        echo "error: as root, scorepub's sandboxed workers run as other uids and must reach .venv;" \
             "these folders are closed to other users: ${closed[*]}. Clone scorepub somewhere" \
             "others can traverse, or run: chmod o+x ${closed[*]}" >&2
        exit 1
    fi
}

ensure_venv() {
    local extras=$1 py
    ensure_traversable
    py=$(pick_python)
    if [ -x .venv/bin/python ] && ! .venv/bin/python -c "$readable_by_all" 2>/dev/null && [ "$(id -u)" = 0 ]; then
        rm -rf .venv  # made earlier with a Python the sandboxed workers cannot read
    fi
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
}
