#!/usr/bin/env bash
# The README's test command: install pixelforge with its test extras and run the whole suite (slow tests too).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[test,compress]"
# CompressAI 1.2.8 (a cp311 wheel) pins numpy<2 in its metadata only; --no-deps keeps numpy 2, [compress] has its deps.
python -m pip install -q --no-deps "compressai==1.2.8"
# Bytecode for pixelforge's own modules, written once: where PYTHONDONTWRITEBYTECODE is set (as on our machines),
# every fresh interpreter the suite starts (CLI runs, spawned DDP processes, tune workers) compiled them again.
python -m compileall -q src
python -m pytest -n 2 --dist loadgroup -q -ra --durations=25 "$@"
