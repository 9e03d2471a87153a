"""HTTP services: the clinical assistant, APIs and console (built on lakehouse)."""
