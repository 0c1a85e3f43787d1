"""Shared setup of the contract tests: no servers, only gen/, tools/ and the fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GEN_DIR = ROOT / "gen"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"

# gen/ is a source root (orchid.*, orchid_sdk.*); the root makes tools.gen_proto importable.
for path in (GEN_DIR, ROOT):
    if str(path) not in sys.path:
        sys.path.append(str(path))
