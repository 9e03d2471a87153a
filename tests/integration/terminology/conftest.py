"""The demo vocabulary, loaded once for the terminology tests (idempotent load)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def demo_vocab(spark: Any) -> Any:
    from lakehouse.terminology.demo import load_demo

    return load_demo(spark)
