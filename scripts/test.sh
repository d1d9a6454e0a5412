#!/usr/bin/env bash
# The README's test command: install pixelforge with its test extras and run the whole suite (slow tests too).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[test]"
python -m pytest -n 2 --dist loadgroup -q -ra "$@"
