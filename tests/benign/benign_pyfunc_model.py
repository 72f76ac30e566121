"""A plain MLflow pyfunc model class, shipped with the model through ``code_paths``.

``build_classic_ml.py`` saves an instance with ``mlflow.pyfunc.save_model(python_model=...,
code_paths=[this file])``: the pickle names ``benign_pyfunc_model.ScaleAndRound`` and the model's
``code/`` folder carries this module, as MLflow users ship custom models.
"""

from __future__ import annotations

import mlflow.pyfunc


class ScaleAndRound(mlflow.pyfunc.PythonModel):
    """Multiplies every numeric column by a factor and rounds the result."""

    def __init__(self, factor: float = 2.0, digits: int = 2) -> None:
        self.factor = factor
        self.digits = digits

    def predict(self, context, model_input, params=None):
        return (model_input.select_dtypes("number") * self.factor).round(self.digits)
