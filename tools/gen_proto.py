"""Regenerate gen/ from proto/: the single code generation entry point (`make proto`).

Outputs, all deterministic (sorted inputs, no timestamps), so tests can regenerate into a
temporary folder and compare byte for byte:

    gen/orchid/v1/*_pb2.py, *_pb2_grpc.py     protoc + grpcio-tools (server and grpc.aio clients)
    gen/orchid/v1/*.pyi                       mypy-protobuf stubs (--mypy_out, --mypy_grpc_out)
    gen/orchid_sdk/                           betterproto2 typed client (grpcio, sync stubs)
    gen/descriptor/orchid.binpb               FileDescriptorSet with imports, for Envoy
    gen/openapi/orchid.v1.openapi.json        OpenAPI 3 document of the REST surface

Usage: python tools/gen_proto.py [--buf PATH] [--out DIR]

    --buf PATH   run `buf lint` (tools/buf_lint.py) and `buf breaking` against main
                 (tools/buf_breaking.py) first and stop on failure; `make proto` passes it
    --out DIR    output folder (default: gen/, updated in place; gen/READY is left alone)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs as `python tools/<name>.py` or `python -m tools.<name>`: make `tools` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import buf_breaking, buf_lint, gen_openapi
from tools.protodeps import (
    PROTO_DIR,
    ROOT,
    contract_files,
    googleapis_include_dir,
    well_known_include_dir,
)

GEN_DIR = ROOT / "gen"
SDK_PACKAGE = "orchid_sdk"
DESCRIPTOR_PATH = Path("descriptor") / "orchid.binpb"
OPENAPI_PATH = Path("openapi") / "orchid.v1.openapi.json"
# Hand-written files under gen/ that generation leaves alone (and freshness ignores).
UNMANAGED = frozenset({"READY"})
SDK_README = Path(__file__).resolve().parent / "orchid_sdk_README.md"

GEN_README = """\
# gen/: generated code, do not edit

Everything here is produced from proto/ by `make proto` (tools/gen_proto.py) and checked
by tests/contract/test_gen_fresh.py. gen/ is a source root: `from orchid.v1 import plans_pb2`.

- orchid/v1/         protobuf + grpcio modules and mypy-protobuf stubs (server side)
- orchid_sdk/        betterproto2 typed client (see orchid_sdk/README.md)
- descriptor/        FileDescriptorSet (with imports) loaded by Envoy's grpc_json_transcoder
- openapi/           OpenAPI 3 document of the REST routes (google.api.http rules)
"""

PACKAGE_INIT = '"""Generated from proto/{package}: do not edit (run `make proto`)."""\n'


def _run_protoc(args: list[str], *, workdir: Path) -> None:
    """Run grpc_tools.protoc with the venv's plugins on PATH, from an empty workdir.

    betterproto2 formats its output with `ruff format -`, which reads ruff settings from the
    current directory; an empty workdir keeps the output independent of pyproject.toml.
    """
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--proto_path={googleapis_include_dir()}",
        f"--proto_path={well_known_include_dir()}",
        *args,
        *contract_files(),
    ]
    result = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed ({' '.join(args)}):\n{result.stderr}")


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def generate(out: Path) -> None:
    """Generate every artefact into out, which must be empty or absent."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orchid-protoc-") as tmp:
        workdir = Path(tmp)
        _run_protoc(
            [
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                f"--mypy_out=quiet:{out}",
                f"--mypy_grpc_out=quiet:{out}",
            ],
            workdir=workdir,
        )
        sdk_out = out / SDK_PACKAGE
        sdk_out.mkdir()
        _run_protoc([f"--python_betterproto2_out={sdk_out}"], workdir=workdir)
        descriptor = out / DESCRIPTOR_PATH
        descriptor.parent.mkdir(parents=True)
        _run_protoc(
            [f"--descriptor_set_out={descriptor}", "--include_imports", "--include_source_info"],
            workdir=workdir,
        )

    _write(out / OPENAPI_PATH, gen_openapi.render(descriptor.read_bytes()))
    _write(out / "README.md", GEN_README)
    _write(out / "orchid" / "__init__.py", PACKAGE_INIT.format(package="orchid"))
    _write(out / "orchid" / "v1" / "__init__.py", PACKAGE_INIT.format(package="orchid/v1"))
    _write(out / "orchid" / "py.typed", "")
    _write(out / SDK_PACKAGE / "README.md", SDK_README.read_text(encoding="utf-8"))


def generated_files(root: Path) -> dict[str, bytes]:
    """Map each managed file under root (relative posix path) to its bytes."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and rel.as_posix() not in UNMANAGED:
            files[rel.as_posix()] = path.read_bytes()
    return files


def _replace_tree(fresh: Path, target: Path) -> list[str]:
    """Make target's managed files equal to fresh's; return the changed paths."""
    new, old = generated_files(fresh), generated_files(target) if target.exists() else {}
    changed = sorted(p for p in new.keys() | old.keys() if new.get(p) != old.get(p))
    for rel in changed:
        dest = target / rel
        if rel in new:
            _write(dest, new[rel])
        else:
            dest.unlink()
    for folder in sorted((p for p in target.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GEN_DIR, help="output folder (default: gen/)")
    parser.add_argument("--buf", help="buf executable: lint and check breaking changes first")
    parser.add_argument("--against", default="main", help="branch for the breaking check (default: main)")
    args = parser.parse_args(argv)
    if args.buf:
        if buf_lint.main(["--buf", args.buf]) != 0:
            return 1
        if buf_breaking.main(["--buf", args.buf, "--against", args.against]) != 0:
            return 1
    with tempfile.TemporaryDirectory(prefix="orchid-gen-") as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        changed = _replace_tree(fresh, args.out)
    for rel in changed:
        print(f"updated {args.out / rel}")
    print(f"{args.out}: {len(changed)} file(s) changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
