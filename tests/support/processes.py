"""Environment for a lakehouse process a test starts beside its own Spark session."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lakehouse_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without LAKEHOUSE_* values, plus a small local Spark.

    ``settings`` are further LAKEHOUSE_* variables by their name after the prefix, e.g.
    ``SPARK__MASTER="local[2]"``; they override the defaults here.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    defaults = {
        "HOME": str(REPO),
        "DATA_DIR": str(data_dir),
        "SPARK__MASTER": "local[1]",
        "SPARK__SHUFFLE_PARTITIONS": "2",  # tiny data: 16 partitions only cost tasks
        "SPARK__UI_ENABLED": "false",
        "SPARK__DRIVER_MEMORY": "1g",
    }
    env.update({f"LAKEHOUSE_{k}": v for k, v in {**defaults, **settings}.items()})
    return env
