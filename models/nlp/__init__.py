"""Clinical NLP for Chinese and English notes: rule pipelines, assertion, de-identification.

Rules and lexicons are versioned data files in ``resources/``; code only interprets them.
"""

from models.nlp.backends import import_nlp_libraries

import_nlp_libraries()  # before anything imports spaCy: see models/nlp/backends.py

from models.nlp.pipeline import load_pipeline  # noqa: E402

__all__ = ["load_pipeline"]
