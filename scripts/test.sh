#!/usr/bin/env bash
# Install scorepub with its test tools into .venv and run the whole test suite.
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database "test") for the registry tests:
# started here with pg_ctlcluster when it is installed but down.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
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

exec .venv/bin/python -m pytest "$@"
