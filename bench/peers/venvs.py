"""Create or reuse the peers' virtualenvs under ``.build/bench-venvs/<name>``.

A venv is reused when its stamp file lists exactly the requirements below; otherwise it is
rebuilt. Pinned versions: a bench run compares against named releases, and the JSON result
records them.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PEERS", "PeerEnvError", "PeerVenv", "ensure_peer_venv", "venv_root"]

log = logging.getLogger(__name__)

# Pinned peers: bump deliberately, the results table names these versions.
PEERS: dict[str, tuple[str, ...]] = {
    "dlt": ("dlt==1.31.0",),
    "airbyte": ("airbyte-cdk==7.39.1",),
}
# The distribution whose version the report shows for each peer.
PEER_DISTRIBUTION = {"dlt": "dlt", "airbyte": "airbyte-cdk"}

_STAMP = ".bench-requirements"
_INSTALL_TIMEOUT_S = 1200


class PeerEnvError(RuntimeError):
    """A peer's virtualenv could not be created; the message has the tail of pip's log."""


@dataclass(frozen=True, slots=True)
class PeerVenv:
    name: str
    path: Path
    requirements: tuple[str, ...]

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def version(self) -> str:
        dist = PEER_DISTRIBUTION[self.name]
        result = subprocess.run(
            [str(self.python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip() if result.returncode == 0 else "unknown"


def venv_root(repo: Path) -> Path:
    return repo / ".build" / "bench-venvs"


def _stamp_text(requirements: tuple[str, ...]) -> str:
    return "\n".join(requirements) + "\n"


def _is_current(venv: PeerVenv) -> bool:
    stamp = venv.path / _STAMP
    return venv.python.exists() and stamp.exists() and stamp.read_text() == _stamp_text(venv.requirements)


def ensure_peer_venv(name: str, repo: Path) -> PeerVenv:
    """Return the peer's venv, creating it first if it is missing or stale (may take minutes)."""
    venv = PeerVenv(name=name, path=venv_root(repo) / name, requirements=PEERS[name])
    if _is_current(venv):
        return venv
    print(
        f"bench: creating the {name} virtualenv ({' '.join(venv.requirements)}); first time only, "
        "this can take a few minutes",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    if venv.path.exists():
        shutil.rmtree(venv.path)
    venv.path.parent.mkdir(parents=True, exist_ok=True)
    log_path = venv.path.parent / f"{name}.install.log"
    base = getattr(sys, "_base_executable", None) or sys.executable
    with log_path.open("w") as log_file:
        for argv in (
            [base, "-m", "venv", str(venv.path)],
            [str(venv.python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
            [str(venv.python), "-m", "pip", "install", "-q", *venv.requirements],
        ):
            done = subprocess.run(argv, stdout=log_file, stderr=subprocess.STDOUT, timeout=_INSTALL_TIMEOUT_S)
            if done.returncode != 0:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                raise PeerEnvError(f"{' '.join(argv)} failed ({done.returncode}); {log_path}:\n{tail}")
    (venv.path / _STAMP).write_text(_stamp_text(venv.requirements))
    print(f"bench: {name} virtualenv ready in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return venv
