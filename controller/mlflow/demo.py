"""``mlgate controller --demo``: seed the embedded registry with a few small demo models.

The models ship as package data (``controller/mlflow/demo_models/``, built by
``tests/fixtures/demo/build_demo_models.py``) and are registered through the
MLflow client exactly as a user would: one run per model, artifacts logged under
``model/``, a model version whose source is that folder. Seeding is idempotent:
a model that already has a version is left alone.

* ``demo-fraud-classifier``: a clean scikit-learn model;
* ``demo-churn-pickle``: a pickle whose payload would ``touch`` a canary file;
* ``demo-base-llm``: a torch checkpoint with the same kind of payload;
* ``demo-support-adapter``: a PEFT adapter whose base is ``models:/demo-base-llm/1``.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

from ..runtime.logging_json import fields

log = logging.getLogger("mlgate.demo")

EXPERIMENT = "mlgate-demo"
# (registered model, package folder); the base comes before the adapter that names it.
DEMO_MODELS: tuple[tuple[str, str], ...] = (
    ("demo-fraud-classifier", "fraud-classifier"),
    ("demo-churn-pickle", "churn-pickle"),
    ("demo-base-llm", "base-llm"),
    ("demo-support-adapter", "support-adapter"),
)


def demo_model_dir(folder: str) -> Path:
    """The installed copy of a demo model folder."""
    return Path(str(resources.files("mlgate.controller.mlflow").joinpath("demo_models", folder)))


def seed(client: Any, artifact_root: Path) -> list[str]:
    """Register every demo model that has no version yet; returns the names registered now."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        artifact_root.mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(EXPERIMENT, artifact_location=artifact_root.resolve().as_uri())
    else:
        experiment_id = experiment.experiment_id
    created = []
    for name, folder in DEMO_MODELS:
        try:
            client.create_registered_model(name, description="mlgate demo model")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            if client.search_model_versions(f"name = '{name}'", max_results=1):
                continue
        run = client.create_run(experiment_id, run_name=name)
        client.log_artifacts(run.info.run_id, str(demo_model_dir(folder)), "model")
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        log.info("registered demo model", extra=fields(model=name, version=str(version.version)))
        created.append(name)
    return created
