"""Generated keys when several processes start at once (two assistant replicas)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from lakehouse.governance.keys import secret_key


def _key(folder: str) -> str:
    return secret_key(Path(folder), "session").hex()


def test_processes_starting_together_get_one_whole_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(6) as pool:
        keys = pool.map(_key, [str(tmp_path / "secrets")] * 12)
    assert len(set(keys)) == 1
    assert len(bytes.fromhex(keys[0])) == 32  # never the empty key of a half-written file
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["session.key"]
