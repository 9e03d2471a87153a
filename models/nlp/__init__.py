"""Clinical NLP for Chinese and English notes: rule pipelines, assertion, de-identification.

Rules and lexicons are versioned data files in ``resources/``; code only interprets them.
"""

from models.nlp.pipeline import load_pipeline

__all__ = ["load_pipeline"]
