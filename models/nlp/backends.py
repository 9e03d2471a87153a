"""Import spaCy and Presidio without the deep-learning backends they probe for.

thinc (under spaCy) imports ``torch`` and Presidio imports ``transformers.pipeline`` at
import time whenever they are installed, to offer GPU and transformer engines. This project
installs both (``models/llm``, ``models/multimodal``), and the two probes cost seconds to
tens of seconds in every process that imports the NLP pipelines: each Spark Python worker
of the NLP job, the CLI, a test run. The pipelines here use neither: spaCy's CNN components
run on thinc's NumPy ops and Presidio's engine is ``SpacyNlpEngine``. So the first import of
spaCy and Presidio happens with those two names refused, which both libraries treat as "not
installed" (``thinc.compat.has_torch`` is False; Presidio's Hugging Face engines are off).

Only the probes are affected: the refusal is lifted as soon as the imports return, so
``import torch`` elsewhere in the process works as usual. A process that already imported
torch or transformers (or spaCy) before is unaffected.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

UNUSED = ("torch", "transformers")


class _Refuse(importlib.abc.MetaPathFinder):
    """A finder that makes the named top-level packages look absent."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@contextmanager
def refused(names: Sequence[str] = UNUSED) -> Iterator[None]:
    """Within the block, importing ``names`` (not yet imported) raises ModuleNotFoundError."""
    finder = _Refuse([n for n in names if n not in sys.modules])
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def import_nlp_libraries() -> None:
    """Import spaCy and Presidio once, without their torch/transformers probes."""
    with refused():
        import presidio_analyzer  # noqa: F401
        import spacy  # noqa: F401
