"""Locate and stage the third-party .proto files that Orchid's contract imports.

buf.build is unreachable from our machines, so google/api/*.proto cannot come from the BSR.
They are copied from the installed googleapis-common-protos wheel instead, which is also
the package that provides their Python modules (google.api.annotations_pb2) at runtime, so
the descriptors Envoy loads and the ones Python imports come from one source.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import google.api.annotations_pb2  # type: ignore[import-untyped]
import grpc_tools  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
# Git-ignored staging folder that buf.yaml lists as a (lint-excluded) workspace module.
PROTODEPS_DIR = ROOT / ".build" / "protodeps"

# buf from npm's @bufbuild/buf: `npm install --prefix .tools @bufbuild/buf`.
BUF_DEFAULT = ROOT / ".tools" / "node_modules" / ".bin" / "buf"

# The google/api files the contract imports, plus their own imports.
GOOGLE_API_FILES = ("annotations.proto", "field_behavior.proto", "http.proto")


def googleapis_include_dir() -> Path:
    """Return the site-packages folder holding google/api/*.proto (googleapis-common-protos)."""
    return Path(google.api.annotations_pb2.__file__).resolve().parents[2]


def well_known_include_dir() -> Path:
    """Return the folder holding google/protobuf/*.proto as shipped with grpcio-tools."""
    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def stage_protodeps(dest: Path = PROTODEPS_DIR) -> Path:
    """Copy the google/api files into dest/google/api and return dest.

    google/protobuf/*.proto are not copied: buf and protoc both ship them.
    """
    target = dest / "google" / "api"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    source = googleapis_include_dir() / "google" / "api"
    for name in GOOGLE_API_FILES:
        shutil.copyfile(source / name, target / name)
    return dest


def buf_binary(explicit: str | None = None) -> str:
    """Return the buf executable: explicit, else $BUF, else the npm install under .tools/."""
    buf = explicit or os.environ.get("BUF") or str(BUF_DEFAULT)
    if not Path(buf).exists() and shutil.which(buf) is None:
        raise SystemExit(f"buf not found at {buf}: run `npm install --prefix .tools @bufbuild/buf`")
    return buf


def contract_files(proto_dir: Path = PROTO_DIR) -> list[str]:
    """Return the contract's .proto files relative to proto_dir, sorted."""
    return sorted(p.relative_to(proto_dir).as_posix() for p in proto_dir.glob("orchid/**/*.proto"))


WORKSPACE_BUF_YAML = """\
version: v2
modules:
  - path: proto
  - path: .build/protodeps
"""


if __name__ == "__main__":
    print(stage_protodeps())
