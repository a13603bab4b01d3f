#!/usr/bin/env bash
# Install scorepub into .venv, publish the examples on the embedded registry (SQLite +
# artifact folder under SCOREPUB_HOME, default ./.scorepub) and serve them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_venv classic
exec .venv/bin/scorepub quickstart "$@"
