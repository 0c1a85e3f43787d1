"""Lint the contract with buf (STANDARD + COMMENTS, see buf.yaml) and check its formatting.

Usage: python tools/buf_lint.py [--buf PATH] [--fix]   --fix rewrites proto/ with `buf format -w`
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

# Runs as `python tools/<name>.py` or `python -m tools.<name>`: make `tools` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.protodeps import ROOT, buf_binary, stage_protodeps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buf", help="buf executable (default: $BUF or .tools/node_modules/.bin/buf)")
    parser.add_argument("--fix", action="store_true", help="format proto/ in place first")
    args = parser.parse_args(argv)
    buf = buf_binary(args.buf)
    stage_protodeps()
    if args.fix:
        subprocess.run([buf, "format", "-w", "proto"], cwd=ROOT, check=True)
    lint = subprocess.run([buf, "lint"], cwd=ROOT, check=False)
    # `buf format -d --exit-code` prints a diff and fails when a file is not buf-formatted.
    fmt = subprocess.run([buf, "format", "-d", "--exit-code", "proto"], cwd=ROOT, check=False)
    if lint.returncode == 0 and fmt.returncode == 0:
        print("buf lint: ok")
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
