#!/usr/bin/env bash
# Install scorepub with its test tools into .venv and run the whole test suite.
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database "test") for the registry tests:
# started here with pg_ctlcluster when it is installed but down. Run as root (as CI does), it
# also runs the hostile-script corpus a second time as an unprivileged user, so the sandbox is
# proven both ways (uid drop as root, user namespaces otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

# Debian packages the tests use: libseccomp (the sandbox), Chromium (the admin page tests),
# nginx (the scale-out test's load balancer).
missing=()
ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || missing+=(libseccomp2)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing ${missing[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "error: install ${missing[*]} (Debian packages) first" >&2
        exit 1
    fi
fi
ensure_venv classic,test

pg_url=${SCOREPUB_TEST_POSTGRES:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
if ! .venv/bin/python - "$pg_url" <<'PY'
import sys, psycopg
psycopg.connect(sys.argv[1].replace("+psycopg", ""), connect_timeout=3).close()
PY
then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        echo "PostgreSQL is down: starting it" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    else
        echo "error: no PostgreSQL at $pg_url and no pg_ctlcluster to start one" >&2
        exit 1
    fi
fi

# two test processes (one per core here); a file's tests stay in one process, so module
# fixtures (a server, a published set of services) are made once. SCOREPUB_TEST_JOBS=0: serially.
.venv/bin/python -m pytest -n "${SCOREPUB_TEST_JOBS:-2}" --dist loadfile "$@"

# The hostile corpus again, as an unprivileged user (only for a full run started as root).
if [ "$(id -u)" = 0 ] && [ $# -eq 0 ]; then
    user=scorepub-test
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    home=$(mktemp -d /tmp/scorepub-test-home.XXXXXX)
    chown "$user" "$home"
    if ! runuser -u "$user" -- test -r .venv/bin/python -a -x "$PWD/tests"; then
        echo "error: $user cannot read $PWD; clone scorepub into a folder other users can read" >&2
        exit 1
    fi
    echo "--- hostile corpus as the unprivileged user $user ---"
    runuser -u "$user" -- env HOME="$home" PYTHONDONTWRITEBYTECODE=1 \
        .venv/bin/python -m pytest -p no:cacheprovider -q tests/hostile
    rm -rf "$home"
fi

# The benchmark harness, in its quick mode, as a smoke check that it works (full runs:
# bench/run.py; figures in docs/benchmarks.md). No timing is asserted: only that both servers
# start, answer alike, and that the promote under load loses no request.
if [ $# -eq 0 ]; then
    echo "--- benchmark harness (quick) ---"
    .venv/bin/python bench/run.py --quick --out test-output/bench
fi
