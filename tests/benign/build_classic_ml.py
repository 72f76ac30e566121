"""Build the classic-ML folders of the benign suite as MLflow saves them.

Needs mlflow (skinny is enough), scikit-learn, xgboost, lightgbm, pandas, skops::

    python tests/benign/build_classic_ml.py

Each folder is what ``mlflow.<flavor>.save_model`` writes (``MLmodel``, ``conda.yaml``,
``python_env.yaml``, ``requirements.txt``, ``input_example.json``, ``serving_input_example.json``, the
signature inside ``MLmodel``, the model file), with requirements inferred by MLflow as in a real run:

- ``mlflow-sklearn-pipeline``: Pipeline(ColumnTransformer(OneHotEncoder, StandardScaler),
  GradientBoostingClassifier) serialized with cloudpickle (MLflow's default through 3.x, what most
  registries hold); ``mlflow-sklearn-pickle`` the same with ``serialization_format="pickle"``,
  ``mlflow-sklearn-skops`` with ``"skops"`` (the default of recent MLflow);
- ``mlflow-xgboost`` (XGBClassifier), ``mlflow-lightgbm`` (a native Booster, ``model.lgb``),
  ``mlflow-lightgbm-sklearn-api`` (LGBMRegressor, saved as the sklearn flavor does);
- ``mlflow-pyfunc``: a plain ``PythonModel`` subclass whose module ships in ``code/``;
- ``mlflow-pyfunc-from-code``: MLflow 3's models-from-code (the model is a Python file, no pickle).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import fresh, scratch, scrub_local_paths, seed_everything  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def churn_frame():
    """A small tabular data set with numeric and categorical columns and a binary label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype("int64"),
            "monthly_spend": rng.normal(50.0, 15.0, n).round(2),
            "tenure_months": rng.integers(0, 72, n).astype("int64"),
            "plan": rng.choice(["basic", "plus", "premium"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    label = ((frame["monthly_spend"] > 55) ^ (frame["plan"] == "basic")).astype("int64")
    return frame, label


def sklearn_pipeline():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, label = churn_frame()
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "monthly_spend", "tenure_months"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("clf", GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0))])
    return pipe.fit(frame, label), frame


def build_sklearn() -> None:
    import mlflow.sklearn

    model, frame = sklearn_pipeline()
    example = frame.head(3)
    for folder, fmt in (
        ("mlflow-sklearn-pipeline", "cloudpickle"),
        ("mlflow-sklearn-pickle", "pickle"),
        ("mlflow-sklearn-skops", "skops"),
    ):
        out = fresh(folder)
        out.rmdir()  # MLflow refuses an existing folder
        kwargs = {"serialization_format": fmt}
        if fmt == "skops":  # MLflow 3.18's default; the tree storage type must be trusted explicitly
            kwargs["skops_trusted_types"] = ["sklearn.tree._tree.Tree"]
        mlflow.sklearn.save_model(model, str(out), input_example=example, **kwargs)


def build_xgboost() -> None:
    import mlflow.xgboost
    from xgboost import XGBClassifier

    frame, label = churn_frame()
    numeric = frame[["age", "monthly_spend", "tenure_months"]].astype("float64")
    model = XGBClassifier(n_estimators=5, max_depth=2, random_state=0).fit(numeric, label)
    out = fresh("mlflow-xgboost")
    out.rmdir()
    mlflow.xgboost.save_model(model, str(out), input_example=numeric.head(3))


def build_lightgbm() -> None:
    import mlflow.lightgbm
    from lightgbm import LGBMRegressor

    frame, _ = churn_frame()
    numeric = frame[["age", "tenure_months"]].astype("float64")
    model = LGBMRegressor(n_estimators=5, num_leaves=4, min_child_samples=5, random_state=0, verbose=-1)
    model.fit(numeric, frame["monthly_spend"])
    out = fresh("mlflow-lightgbm-sklearn-api")
    out.rmdir()
    mlflow.lightgbm.save_model(model, str(out), input_example=numeric.head(3))

    import lightgbm

    booster = lightgbm.train(
        {"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 5, "verbose": -1, "seed": 0},
        lightgbm.Dataset(numeric, frame["monthly_spend"]),
        num_boost_round=5,
    )
    out = fresh("mlflow-lightgbm")
    out.rmdir()
    mlflow.lightgbm.save_model(booster, str(out), input_example=numeric.head(3))


def build_pyfunc() -> None:
    import mlflow.pyfunc
    from benign_pyfunc_model import ScaleAndRound

    frame, _ = churn_frame()
    example = frame[["age", "monthly_spend"]].head(3)
    out = fresh("mlflow-pyfunc")
    out.rmdir()
    mlflow.pyfunc.save_model(
        str(out),
        python_model=ScaleAndRound(factor=1.5),
        code_paths=[str(HERE / "benign_pyfunc_model.py")],
        input_example=example,
    )

    code = scratch("pyfunc-from-code") / "scale_model.py"
    code.write_text(
        '"""A models-from-code MLflow model: MLflow runs this file to get the model."""\n\n'
        "import mlflow\n"
        "from mlflow.pyfunc import PythonModel\n\n\n"
        "class Doubler(PythonModel):\n"
        "    def predict(self, context, model_input, params=None):\n"
        '        return model_input.select_dtypes("number") * 2\n\n\n'
        "mlflow.models.set_model(Doubler())\n",
        encoding="utf-8",
    )
    out = fresh("mlflow-pyfunc-from-code")
    out.rmdir()
    mlflow.pyfunc.save_model(str(out), python_model=str(code), input_example=example)
    # MLmodel records the absolute path the code had on the saving machine (model_code_path): keep that
    # trait, with a neutral prefix instead of this checkout's.
    mlmodel = out / "MLmodel"
    mlmodel.write_text(scrub_local_paths(mlmodel.read_text(encoding="utf-8")), encoding="utf-8")


BUILDERS = [build_sklearn, build_xgboost, build_lightgbm, build_pyfunc]


def main(only: list[str]) -> None:
    for build in BUILDERS:
        if only and build.__name__[len("build_") :] not in only:
            continue
        seed_everything(0)
        build()
        print(f"built {build.__name__[len('build_') :]}")


if __name__ == "__main__":
    main(sys.argv[1:])
