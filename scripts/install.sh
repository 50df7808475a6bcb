#!/usr/bin/env bash
# Create .venv and install Cordillera with its test tools. Idempotent and quick when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
# Headless Chromium for the report's browser test (tests/test_report_browser.py skips without
# it). Debian's package, only as root and only when missing (checked on every run, as a
# machine may be new while .venv is not); never fails the install.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
    || echo "install.sh: could not install chromium; the browser test will skip" >&2
fi
stamp=.venv/.cordillera-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
# PyTorch first: take the machine's local CPU build when it has one, else the CPU-only wheel
# index, else whatever the default index serves. Installing it before the project keeps pip
# from resolving `torch` to a multi-GB CUDA build on machines without a GPU.
if ! python -c "import torch" >/dev/null 2>&1; then
  python -m pip install -q "torch==2.13.0" \
    || python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu \
    || python -m pip install -q torch
fi
python -m pip install -q -e ".[dev]"
# The AlpaSim egodriver wire contract (and the independent peer the tests drive). Its declared
# protobuf>=4.25 clashes with commonroad-io's protobuf==3.20.2 pin for pip's resolver, but its
# generated code runs on 3.20 (tests/test_service_*.py prove it), so it goes in without
# re-resolving dependencies; what it needs besides protobuf is already a dependency.
python -m pip install -q --no-deps "carla-driver-interface==2.3.1"
touch "$stamp"
