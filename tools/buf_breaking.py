"""Check proto/ for breaking changes (buf rule set FILE) against a git branch, main by default.

buf cannot reach the BSR for google/api, so `buf breaking --against '.git#branch=main'`
would fail to build main's protos. Instead this script exports main's proto/ with
`git archive` into a temporary workspace, adds the same staged dependencies, builds an image
of each side with `buf build` (working tree and main, same two-module layout) and runs
`buf breaking` between the two images.

When the branch does not exist yet (no commit) or has no proto/ (the contract's first
commit), there is nothing to break: the script says so and exits 0.

Usage: python tools/buf_breaking.py [--buf PATH] [--against BRANCH]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# Runs as `python tools/<name>.py` or `python -m tools.<name>`: make `tools` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.protodeps import PROTODEPS_DIR, ROOT, WORKSPACE_BUF_YAML, buf_binary, stage_protodeps


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)


def _export_proto(ref: str, dest: Path) -> bool:
    """Extract ref's proto/ into dest; return False when ref has no commit or no proto/."""
    if _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        print(f"buf breaking: {ref} has no commit yet; nothing to compare against")
        return False
    listing = _git("ls-tree", "-r", "--name-only", ref, "--", "proto/")
    if not any(name.endswith(b".proto") for name in listing.stdout.splitlines()):
        print(f"buf breaking: {ref} has no proto/ yet (first contract commit); nothing to compare against")
        return False
    archive = _git("archive", "--format=tar", ref, "proto")
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref} proto failed: {archive.stderr.decode()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="main", help="git branch or ref (default: main)")
    parser.add_argument("--buf", help="buf executable (default: $BUF or .tools/node_modules/.bin/buf)")
    args = parser.parse_args(argv)
    buf = buf_binary(args.buf)
    with tempfile.TemporaryDirectory(prefix="orchid-buf-against-") as tmp:
        workspace = Path(tmp) / "workspace"
        if not _export_proto(args.against, workspace):
            return 0
        stage_protodeps(workspace / PROTODEPS_DIR.relative_to(ROOT))
        (workspace / "buf.yaml").write_text(WORKSPACE_BUF_YAML, encoding="utf-8")
        against = Path(tmp) / "against.binpb"
        current = Path(tmp) / "current.binpb"
        stage_protodeps()
        # Both images hold the same google/api and google/protobuf files, so only changes
        # under proto/ can be reported.
        subprocess.run([buf, "build", str(workspace), "-o", str(against)], check=True)
        subprocess.run([buf, "build", "-o", str(current)], cwd=ROOT, check=True)
        # The images carry no configuration: buf.yaml of the working tree supplies the rules.
        result = subprocess.run(
            [buf, "breaking", str(current), "--against", str(against), "--config", "buf.yaml"],
            cwd=ROOT,
            check=False,
        )
    if result.returncode == 0:
        print(f"buf breaking: no breaking change against {args.against}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
