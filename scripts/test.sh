#!/usr/bin/env bash
# The test command: install, lint, type-check, then the test suite (fast lane unless told).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check src tests benchmarks
ruff format --check src tests benchmarks
mypy
python -m pytest -q -n "${CORDILLERA_TEST_WORKERS:-2}" "$@"
