"""gen/ must be exactly what tools/gen_proto.py produces from proto/ (run `make proto`)."""

from __future__ import annotations

from pathlib import Path

from tools import gen_proto

from .conftest import GEN_DIR


def test_gen_is_fresh(tmp_path: Path) -> None:
    fresh_dir = tmp_path / "gen"
    gen_proto.generate(fresh_dir)
    fresh = gen_proto.generated_files(fresh_dir)
    committed = gen_proto.generated_files(GEN_DIR)

    stale = sorted(p for p in fresh.keys() & committed.keys() if fresh[p] != committed[p])
    missing = sorted(fresh.keys() - committed.keys())
    extra = sorted(committed.keys() - fresh.keys())
    problems = [f"stale:   gen/{p}" for p in stale]
    problems += [f"missing: gen/{p}" for p in missing]
    problems += [f"extra:   gen/{p}" for p in extra]
    assert not problems, "gen/ is out of date with proto/; run `make proto`:\n" + "\n".join(problems)


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    gen_proto.generate(first)
    gen_proto.generate(second)
    assert gen_proto.generated_files(first) == gen_proto.generated_files(second)
