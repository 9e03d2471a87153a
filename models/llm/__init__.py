"""Local LLM tuning: instruction data from the de-identified lakehouse, LoRA training.

``models.llm.lora`` (the trainer) needs only the standard library, torch, transformers and
peft, so it runs on a GPU server without Spark or MLflow (ADR 0026);
``models.llm.instructions`` builds its data with Spark.
"""
