"""The NLP packages load without the deep-learning backends spaCy and Presidio probe for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from models.nlp.backends import refused

NOT_YET_IMPORTED = "tabnanny"  # a standard-library module nothing here imports


def test_a_refused_module_looks_absent_only_inside_the_block() -> None:
    sys.modules.pop(NOT_YET_IMPORTED, None)
    with refused([NOT_YET_IMPORTED]), pytest.raises(ModuleNotFoundError):
        __import__(NOT_YET_IMPORTED)
    assert __import__(NOT_YET_IMPORTED).__name__ == NOT_YET_IMPORTED


def test_an_imported_module_is_never_refused() -> None:
    with refused(["json"]):
        assert __import__("json").__name__ == "json"


def test_the_pipelines_load_and_run_without_torch_or_transformers() -> None:
    code = (
        "import sys\n"
        "from models.nlp import load_pipeline\n"
        "from models.nlp.deid import analyzer\n"
        "doc = load_pipeline('en')('Denies chest pain.')\n"
        "assert [e.text for e in doc.ents] == ['chest pain'], doc.ents\n"
        "analyzer()\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
