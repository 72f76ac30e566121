"""Where each serving kind names its model, and what each URI asks the gate to verify."""

from __future__ import annotations

import pytest
from k8s_helpers import pod_template, workload

from mlgate.controller.admission.model_refs import (
    MalformedObject,
    ModelRef,
    MutableSelector,
    RegistryAlias,
    RegistryVersion,
    S3Objects,
    UnsupportedKind,
    Unverifiable,
    extract,
    parse_reference,
)

# Every KServe v1beta1 predictor framework block, plus the generic "model" block.
KSERVE_FRAMEWORKS = [
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "pmml",
    "lightgbm",
    "paddle",
    "huggingface",
    "model",
]


@pytest.mark.parametrize("framework", KSERVE_FRAMEWORKS)
def test_every_kserve_framework_block_is_read(framework: str) -> None:
    obj = workload("InferenceService", {"predictor": {framework: {"storageUri": f"s3://models/{framework}/"}}})
    assert extract(obj) == [ModelRef(f"s3://models/{framework}/", f"spec.predictor.{framework}.storageUri")]


def test_kserve_storage_uris_storage_spec_env_and_all_components() -> None:
    obj = workload(
        "InferenceService",
        {
            "predictor": {
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUris": [{"uri": "models:/llm/1", "mountPath": "/mnt/models/llm"}, "models:/lora/2"],
                    "storage": {"key": "minio", "path": "/team/llm/", "parameters": {"type": "s3"}},
                },
                "workerSpec": {"containers": [{"name": "w", "env": [{"name": "STORAGE_URI", "value": "models:/w/1"}]}]},
            },
            "transformer": {
                "containers": [
                    {
                        "name": "t",
                        "env": [
                            {"name": "OTHER", "value": "models:/ignored/1"},
                            {"name": "STORAGE_URI", "value": "s3://t/x"},
                        ],
                    }
                ]
            },
            "explainer": {"art": {"type": "SquareAttack", "storageUri": "s3://explain/er"}},
        },
    )
    assert extract(obj) == [
        ModelRef("models:/llm/1", "spec.predictor.model.storageUris[0].uri"),
        ModelRef("models:/lora/2", "spec.predictor.model.storageUris[1]"),
        ModelRef("/team/llm/", "spec.predictor.model.storage.path", storage_key="minio"),
        ModelRef("models:/w/1", "spec.predictor.workerSpec.containers[0].env[0].value"),
        ModelRef("s3://t/x", "spec.transformer.containers[0].env[1].value"),
        ModelRef("s3://explain/er", "spec.explainer.art.storageUri"),
    ]


def test_pod_spec_fields_named_storage_are_not_model_storage() -> None:
    claim = {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    obj = workload(
        "InferenceService",
        {
            "predictor": {
                "sklearn": {"storageUri": "models:/a/1", "resources": {"limits": {"ephemeral-storage": "2Gi"}}},
                "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": claim}}],
            }
        },
    )
    assert extract(obj) == [ModelRef("models:/a/1", "spec.predictor.sklearn.storageUri")]


def test_storage_spec_with_its_own_bucket_is_an_s3_uri() -> None:
    obj = workload(
        "InferenceService",
        {
            "predictor": {
                "model": {"storage": {"path": "team/fraud/", "parameters": {"type": "s3", "bucket": "models"}}}
            }
        },
    )
    assert extract(obj) == [ModelRef("s3://models/team/fraud/", "spec.predictor.model.storage.path")]
    default_key = workload("InferenceService", {"predictor": {"model": {"storage": {"path": "p"}}}})
    assert extract(default_key) == [ModelRef("p", "spec.predictor.model.storage.path", storage_key="default")]


def test_trained_model_and_duplicates() -> None:
    obj = workload(
        "TrainedModel", {"inferenceService": "host", "model": {"framework": "sklearn", "storageUri": "models:/fraud/1"}}
    )
    assert extract(obj) == [ModelRef("models:/fraud/1", "spec.model.storageUri")]
    twice = workload(
        "InferenceService",
        {"predictor": {"sklearn": {"storageUri": "models:/a/1"}}, "explainer": {"art": {"storageUri": "models:/a/1"}}},
    )
    assert extract(twice) == [ModelRef("models:/a/1", "spec.predictor.sklearn.storageUri")]


def test_seldon_graph_is_walked_recursively() -> None:
    graph = {
        "name": "a",
        "modelUri": "models:/a/1",
        "children": [
            {"name": "b", "children": [{"name": "c", "modelUri": "models:/c/1"}]},
            {"name": "d", "modelUri": "s3://d/e"},
        ],
    }
    obj = workload(
        "SeldonDeployment",
        {
            "predictors": [
                {"name": "main", "graph": graph, "explainer": {"type": "AnchorTabular", "modelUri": "s3://exp/x"}}
            ]
        },
    )
    assert [r.location for r in extract(obj)] == [
        "spec.predictors[0].graph.modelUri",
        "spec.predictors[0].graph.children[0].children[0].modelUri",
        "spec.predictors[0].graph.children[1].modelUri",
        "spec.predictors[0].explainer.modelUri",
    ]


def test_annotated_workloads_of_every_pod_kind() -> None:
    cron = workload(
        "CronJob",
        {
            "schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": pod_template({"mlgate.io/model": "models:/batch/3"})}},
        },
    )
    assert extract(cron) == [
        ModelRef("models:/batch/3", "spec.jobTemplate.spec.template.metadata.annotations[mlgate.io/model]")
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"mlgate.io/model": "models:/a/1,\n s3://b/c  models:/a/1"}},
        "spec": {"containers": []},
    }
    assert [r.uri for r in extract(pod)] == ["models:/a/1", "s3://b/c"]
    empty = workload("Deployment", {"template": pod_template({"mlgate.io/model": " , "})})
    with pytest.raises(MalformedObject, match="is empty"):
        extract(empty)


@pytest.mark.parametrize(
    ("obj", "phrase"),
    [
        (workload("InferenceService", {"predictor": {"sklearn": {"storageUri": 7}}}), "must be a string"),
        (workload("InferenceService", {"predictor": {"model": {"storage": {"key": "k"}}}}), "path is required"),
        (
            workload(
                "InferenceService",
                {
                    "predictor": {
                        "containers": [
                            {
                                "env": [
                                    {"name": "STORAGE_URI", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
                                ]
                            }
                        ]
                    }
                },
            ),
            "valueFrom",
        ),
        (workload("SeldonDeployment", {"predictors": {"graph": {}}}), "must be a list"),
        ({"kind": "Model", "spec": {}}, "apiVersion"),
    ],
)
def test_malformed_objects_are_rejected(obj: dict, phrase: str) -> None:
    with pytest.raises(MalformedObject, match=phrase):
        extract(obj)


def test_absurd_nesting_is_malformed_not_a_crash() -> None:
    graph: dict = {"name": "leaf", "modelUri": "models:/deep/1"}
    for i in range(40):
        graph = {"name": f"n{i}", "children": [graph]}
    with pytest.raises(MalformedObject, match="nested too deeply"):
        extract(workload("SeldonDeployment", {"predictors": [{"graph": graph}]}))


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(UnsupportedKind, match="ConfigMap"):
        extract({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    with pytest.raises(UnsupportedKind):  # right kind name, wrong API group
        extract({"apiVersion": "example.com/v1", "kind": "InferenceService", "spec": {}})


# URIs compared against MLflow's own parser, the loader a models:/ URI will meet.
MODEL_URIS = [
    "models:/fraud/3",
    "models:/fraud/03",
    "models:/fraud@champion",
    "models:/a@b@c",
    "models:/fraud/latest",
    "models:/fraud/Production",
    "models:/m-0123abcd",
    "models:/Fraud Model/12",
]


@pytest.mark.parametrize("uri", MODEL_URIS)
def test_models_uris_parse_like_mlflow(uri: str) -> None:
    from mlflow.store.artifact.utils.models import _parse_model_uri

    ours = parse_reference(uri)
    theirs = _parse_model_uri(uri)
    if theirs.version is not None:
        assert ours == RegistryVersion(theirs.name, theirs.version)
    elif theirs.alias is not None:
        assert ours == RegistryAlias(theirs.name, theirs.alias)
    elif theirs.model_id is not None:
        assert isinstance(ours, Unverifiable) and "logged-model" in ours.reason
    else:  # a stage or "latest": mutable
        assert ours == MutableSelector(theirs.name, uri.rsplit("/", 1)[1])


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mlflow://models:/fraud/2", RegistryVersion("fraud", "2")),
        ("s3://models/team/fraud", S3Objects("models", "team/fraud")),
        ("s3://models", S3Objects("models", "")),
    ],
)
def test_other_uris(uri: str, expected: object) -> None:
    assert parse_reference(uri) == expected


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("runs:/0123/model", "runs"),
        ("gs://b/m", "gs"),
        ("hf://org/model", "hf"),
        ("pvc://claim/path", "pvc"),
        ("/mnt/models", "path"),
        ("models:/a/b/c", "models"),
        ("models://profile@databricks/a/1", "models"),
        ("s3:///nobucket", "s3"),
        ("s3://b/k?versionId=1", "s3"),
        ("models:/fraud/1?x=1", "models"),
    ],
)
def test_unverifiable_uris(uri: str, scheme: str) -> None:
    target = parse_reference(uri)
    assert isinstance(target, Unverifiable) and target.scheme == scheme
