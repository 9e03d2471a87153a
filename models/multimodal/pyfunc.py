"""The multimodal models as MLflow pyfunc models (docs/models.md, ADR 0025).

The logged model is a folder of weights and a JSON description (``FittedModel.save``: a
``state_dict`` loaded with ``weights_only=True``, no pickled torch module) plus this
:class:`MultimodalPyfunc`, which MLflow pickles by reference: loading needs the project's
``models.multimodal`` package importable, as the scoring job's Spark workers have it.

Input: a pandas DataFrame with the cohort frame's model columns (the tabular features as
doubles, null = unknown; ``note_text`` string, null or "" = no note; ``image`` binary, 64*64
float32 little-endian, null = no study). Output: the probability of the label, one double
a row. The input example is synthetic (train-split medians, a made-up sentence, a blank
image), never a patient's row.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from models.multimodal.nets import IMAGE_BYTES, FittedModel, decode_images

if TYPE_CHECKING:
    from mlflow.models.signature import ModelSignature

#: Artifact key of the model folder.
ARTIFACT = "net"
TEXT_COLUMN = "note_text"
IMAGE_COLUMN = "image"
#: The text of the input example: made up, no patient's.
EXAMPLE_TEXT = "示例记录 example note"


def frame_inputs(
    model: FittedModel, frame: pd.DataFrame
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(tabular, text, image, has_image) of a model-input frame (missing columns: absent)."""
    n = len(frame)
    tab = np.full((n, len(model.tabular_columns)), np.nan, dtype=np.float32)
    for j, col in enumerate(model.tabular_columns):
        if col in frame.columns:
            tab[:, j] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float32)
    text = [""] * n
    if TEXT_COLUMN in frame.columns:
        text = [v if isinstance(v, str) else "" for v in frame[TEXT_COLUMN].tolist()]
    cells: list[bytes | None] = [None] * n
    if IMAGE_COLUMN in frame.columns:
        cells = list(frame[IMAGE_COLUMN].tolist())
    image, has_image = decode_images(cells)
    return tab, text, image, has_image


class MultimodalPyfunc(PythonModel):
    """``predict(frame) -> probabilities`` of a saved :class:`FittedModel` (CPU)."""

    def __init__(self) -> None:
        self._model: FittedModel | None = None

    def load_context(self, context: Any) -> None:
        import torch

        self._model = FittedModel.load(Path(context.artifacts[ARTIFACT]))
        # The model's thread count: a Spark task per core already keeps the cores busy.
        torch.set_num_threads(self._model.config.threads)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        if self._model is None:
            self.load_context(context)
        assert self._model is not None
        return self._model.predict(*frame_inputs(self._model, model_input), device="cpu")


def input_columns(model: FittedModel) -> list[str]:
    """The model-input columns of the signature: tabular features, note text, image."""
    return [*model.tabular_columns, TEXT_COLUMN, IMAGE_COLUMN]


def signature(model: FittedModel) -> ModelSignature:
    """Doubles for the tabular columns, optional string text and binary image; a double out."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs: list[ColSpec | TensorSpec] = [
        ColSpec("double", c, required=False) for c in model.tabular_columns
    ]
    inputs += [ColSpec("string", TEXT_COLUMN, required=False)]
    inputs += [ColSpec("binary", IMAGE_COLUMN, required=False)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


def input_example(model: FittedModel, tabular: np.ndarray) -> pd.DataFrame:
    """One synthetic row: rounded train-split medians, a made-up sentence, a blank image."""
    with np.errstate(all="ignore"):
        medians = np.nanmedian(tabular, axis=0) if len(tabular) else np.zeros(0)
    row: dict[str, Any] = {
        c: float(np.round(m)) if np.isfinite(m) else 0.0
        for c, m in zip(model.tabular_columns, medians, strict=False)
    }
    row[TEXT_COLUMN] = EXAMPLE_TEXT
    row[IMAGE_COLUMN] = bytes(IMAGE_BYTES)
    return pd.DataFrame([row])


def log_model(model: FittedModel, folder: Path, example: pd.DataFrame, name: str) -> Any:
    """Save ``model`` under ``folder`` and log it to the active run as a pyfunc ``name``."""
    import mlflow
    import sklearn
    import torch

    model.save(folder)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=MultimodalPyfunc(),
        artifacts={ARTIFACT: str(folder)},
        signature=signature(model),
        input_example=example,
        pip_requirements=[
            f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}",
            f"pandas=={pd.__version__}",
            f"scikit-learn=={sklearn.__version__}",
        ],
    )
