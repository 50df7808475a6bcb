#!/usr/bin/env bash
# The main job on the embedded default: install, then run `cordillera demo` (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
cordillera demo --out "${1:-out/demo}"
