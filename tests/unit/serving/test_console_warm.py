"""``Console.warm``: every panel read once in the background at start, so the first page or
scrape answers from the cache (the panel sources themselves are exercised against real
tables in tests/integration/serving/test_console.py; here they are counted stand-ins)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.policy import load_policy
from lakehouse.settings import Settings
from serving.console.service import PANELS, Console


class CountedConsole(Console):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: dict[str, int] = {}
        self._counting = threading.Lock()

    def _source(self, name: str) -> Any:
        def read() -> dict[str, Any]:
            with self._counting:
                self.calls[name] = self.calls.get(name, 0) + 1
            return {"rows": [name]}

        return read


def test_warm_reads_every_panel_once_and_later_reads_use_the_cache(tmp_path: Path) -> None:
    now = [1000.0]
    console = CountedConsole(
        None,  # type: ignore[arg-type]  (the stand-in sources use no Spark)
        Settings(data_dir=tmp_path),
        MemoryAuditLog(),
        load_policy(),
        clock=lambda: now[0],
    )
    console.warm().join(timeout=30)
    assert console.calls == dict.fromkeys(PANELS, 1)
    for name in PANELS:
        assert console.figure(name)["status"] == "ok"
    assert console.calls == dict.fromkeys(PANELS, 1)  # answered from the cache
