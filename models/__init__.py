"""Model training, evaluation and NLP pipelines (built on lakehouse, never on jobs/serving)."""
