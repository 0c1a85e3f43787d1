#!/usr/bin/env bash
# `make lint` entry for the contract: buf lint + format check, then buf breaking against main.
# Usage: bash tools/buf_lint.sh [BUF]   (default: .tools/node_modules/.bin/buf)
set -euo pipefail
cd "$(dirname "$0")/.."
buf="${1:-.tools/node_modules/.bin/buf}"
python=".venv/bin/python"
[[ -x "$python" ]] || python="python3"
"$python" tools/buf_lint.py --buf "$buf"
"$python" tools/buf_breaking.py --buf "$buf" --against main
