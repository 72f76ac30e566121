"""Model references in Kubernetes workloads: where a serving object names the model it will load.

Two jobs, both pure (no network):

* ``extract(obj)`` walks a workload the way its serving controller reads it and returns every model
  URI with the JSON path it came from: KServe ``InferenceService`` / ``TrainedModel`` (every
  ``storageUri``, ``storageUris[]``, ``storage`` spec and ``STORAGE_URI`` env of the predictor,
  transformer and explainer, whatever the framework block is called), Seldon Core 2 ``Model``
  (``spec.storageUri``), Seldon Core 1 ``SeldonDeployment`` (``graph.modelUri``, recursively through
  ``children``, plus the explainer), and any pod workload (Deployment, StatefulSet, DaemonSet, Job,
  CronJob, Pod) annotated with ``mlgate.io/model`` on itself or on its pod template.
* ``parse_reference(uri)`` turns one URI into what must be verified: a pinned registry version, a
  mutable alias/stage, S3 objects, or a scheme mlgate cannot verify.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse, urlsplit

MODEL_ANNOTATION = "mlgate.io/model"
"""Annotation naming the model(s) a plain workload serves: one URI, or several separated by commas/whitespace."""

STORAGE_URI_ENV = "STORAGE_URI"  # KServe custom containers: the storage initializer downloads this
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
MAX_DEPTH = 32  # nesting deeper than any real serving spec is treated as malformed (fail closed)

POD_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
    ("", "Pod"): (),
}


class MalformedObject(ValueError):
    """The object is not shaped like its kind (a field of the wrong type, absurd nesting)."""


class UnsupportedKind(ValueError):
    """mlgate does not know where this kind names its model."""


@dataclass(frozen=True)
class ModelRef:
    """One model reference found in a workload."""

    uri: str  # as written (for a KServe storage spec without a bucket: the path inside the storage)
    location: str  # JSON path in the object, e.g. ``spec.predictor.sklearn.storageUri``
    storage_key: str | None = None  # KServe ``storage.key`` whose bucket lives in the storage secret


def api_group(obj: Mapping[str, Any]) -> str:
    """The API group of an object (``""`` for the core group)."""
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str) or not api_version:
        raise MalformedObject("object has no apiVersion")
    return api_version.rpartition("/")[0]


def extract(obj: Mapping[str, Any]) -> list[ModelRef]:
    """Every model reference in ``obj``, deduplicated by URI (first location kept), in document order."""
    if not isinstance(obj, Mapping):
        raise MalformedObject("object is not a JSON object")
    kind = obj.get("kind")
    key = (api_group(obj), kind)
    spec = obj.get("spec", {})
    if key in {("serving.kserve.io", "InferenceService"), ("serving.kserve.io", "TrainedModel")}:
        found = _kserve(_mapping(spec, "spec"))
    elif key == ("mlops.seldon.io", "Model"):
        found = _string_field(_mapping(spec, "spec"), "storageUri", "spec")
    elif key == ("machinelearning.seldon.io", "SeldonDeployment"):
        found = _seldon_deployment(_mapping(spec, "spec"))
    elif key in POD_TEMPLATE_PATHS:
        found = _annotated(obj, POD_TEMPLATE_PATHS[key])
    else:
        raise UnsupportedKind(f"mlgate does not know where {kind or '?'} ({key[0] or 'core'}) names its model")
    seen: dict[str, ModelRef] = {}
    for ref in found:
        seen.setdefault(ref.uri if ref.storage_key is None else f"{ref.storage_key}\0{ref.uri}", ref)
    return list(seen.values())


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedObject(f"{where} must be an object")
    return value


def _string_field(parent: Mapping[str, Any], key: str, where: str) -> Iterator[ModelRef]:
    value = parent.get(key)
    if value is None or value == "":
        return
    if not isinstance(value, str):
        raise MalformedObject(f"{where}.{key} must be a string")
    yield ModelRef(value.strip(), f"{where}.{key}")


# --- KServe ------------------------------------------------------------------------------------


def _kserve(spec: Mapping[str, Any]) -> Iterator[ModelRef]:
    # TrainedModel keeps its URI in spec.model.storageUri; InferenceService in its components.
    yield from _kserve_walk(_mapping(spec.get("model"), "spec.model"), "spec.model", 0)
    for component in KSERVE_COMPONENTS:
        yield from _kserve_walk(_mapping(spec.get(component), f"spec.{component}"), f"spec.{component}", 0)


def _kserve_walk(node: Any, where: str, depth: int) -> Iterator[ModelRef]:
    """Every storage field anywhere under a component: framework blocks change names, the fields do not."""
    if depth > MAX_DEPTH:
        raise MalformedObject(f"{where} is nested too deeply")
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _kserve_walk(item, f"{where}[{i}]", depth + 1)
        return
    if not isinstance(node, Mapping):
        return
    yield from _string_field(node, "storageUri", where)
    yield from _storage_uris(node.get("storageUris"), f"{where}.storageUris")
    if depth <= 1 and isinstance(node.get("storage"), Mapping):  # the component or its framework/model block
        yield _storage_spec(node["storage"], f"{where}.storage")
    yield from _storage_env(node.get("env"), f"{where}.env")
    for key, value in node.items():
        if key not in {"storageUri", "storageUris", "storage", "env"} and isinstance(value, (Mapping, list)):
            yield from _kserve_walk(value, f"{where}.{key}", depth + 1)


def _storage_uris(value: Any, where: str) -> Iterator[ModelRef]:
    if value is None:
        return
    if not isinstance(value, list):
        raise MalformedObject(f"{where} must be a list")
    for i, item in enumerate(value):
        if isinstance(item, str):
            if item:
                yield ModelRef(item.strip(), f"{where}[{i}]")
        elif isinstance(item, Mapping):
            yield from _string_field(item, "uri", f"{where}[{i}]")
        else:
            raise MalformedObject(f"{where}[{i}] must be a string or an object with uri")


def _storage_spec(storage: Mapping[str, Any], where: str) -> ModelRef:
    path = storage.get("path")
    if not isinstance(path, str) or not path:
        raise MalformedObject(f"{where}.path is required and must be a string")
    params = _mapping(storage.get("parameters"), f"{where}.parameters")
    bucket = params.get("bucket")
    if params.get("type") == "s3" and isinstance(bucket, str) and bucket:
        return ModelRef(f"s3://{bucket}/{path.lstrip('/')}", f"{where}.path")
    key = storage.get("key", "default")
    if not isinstance(key, str) or not key:
        raise MalformedObject(f"{where}.key must be a string")
    return ModelRef(path, f"{where}.path", storage_key=key)


def _storage_env(env: Any, where: str) -> Iterator[ModelRef]:
    if env is None:
        return
    if not isinstance(env, list):
        raise MalformedObject(f"{where} must be a list")
    for i, item in enumerate(env):
        if isinstance(item, Mapping) and item.get("name") == STORAGE_URI_ENV:
            if "valueFrom" in item:
                raise MalformedObject(
                    f"{where}[{i}] takes {STORAGE_URI_ENV} from valueFrom (a Secret or ConfigMap), "
                    "which mlgate cannot verify; set value directly"
                )
            yield from _string_field(item, "value", f"{where}[{i}]")


# --- Seldon Core 1 -----------------------------------------------------------------------------


def _seldon_deployment(spec: Mapping[str, Any]) -> Iterator[ModelRef]:
    predictors = spec.get("predictors") or []
    if not isinstance(predictors, list):
        raise MalformedObject("spec.predictors must be a list")
    for i, predictor in enumerate(predictors):
        where = f"spec.predictors[{i}]"
        predictor = _mapping(predictor, where)
        yield from _seldon_graph(predictor.get("graph"), f"{where}.graph", 0)
        yield from _string_field(
            _mapping(predictor.get("explainer"), f"{where}.explainer"), "modelUri", f"{where}.explainer"
        )


def _seldon_graph(node: Any, where: str, depth: int) -> Iterator[ModelRef]:
    if node is None:
        return
    if depth > MAX_DEPTH:
        raise MalformedObject(f"{where} is nested too deeply")
    node = _mapping(node, where)
    yield from _string_field(node, "modelUri", where)
    children = node.get("children") or []
    if not isinstance(children, list):
        raise MalformedObject(f"{where}.children must be a list")
    for i, child in enumerate(children):
        yield from _seldon_graph(child, f"{where}.children[{i}]", depth + 1)


# --- annotated pod workloads -------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s,]+")


def _annotated(obj: Mapping[str, Any], template_path: tuple[str, ...]) -> Iterator[ModelRef]:
    yield from _annotation_refs(_mapping(obj.get("metadata"), "metadata"), "metadata")
    if not template_path:
        return
    node: Any = obj
    where = ""
    for part in template_path:
        where = f"{where}.{part}" if where else part
        node = _mapping(node.get(part), where)
    yield from _annotation_refs(_mapping(node.get("metadata"), f"{where}.metadata"), f"{where}.metadata")


def _annotation_refs(metadata: Mapping[str, Any], where: str) -> Iterator[ModelRef]:
    annotations = _mapping(metadata.get("annotations"), f"{where}.annotations")
    value = annotations.get(MODEL_ANNOTATION)
    if value is None:
        return
    if not isinstance(value, str):
        raise MalformedObject(f"{where}.annotations[{MODEL_ANNOTATION}] must be a string")
    location = f"{where}.annotations[{MODEL_ANNOTATION}]"
    uris = [part for part in _SEPARATORS.split(value) if part]
    if not uris:
        raise MalformedObject(f"{location} is empty; name the model (models:/name/version or s3://bucket/key)")
    for uri in uris:
        yield ModelRef(uri, location)


# --- what a URI asks the gate to verify --------------------------------------------------------


@dataclass(frozen=True)
class RegistryVersion:
    """``models:/name/3``: one immutable registered model version."""

    name: str
    version: str


@dataclass(frozen=True)
class RegistryAlias:
    """``models:/name@alias``: whatever version the alias points at right now."""

    name: str
    alias: str


@dataclass(frozen=True)
class MutableSelector:
    """``models:/name/Production`` or ``models:/name/latest``: a stage or "latest", not a version."""

    name: str
    selector: str


@dataclass(frozen=True)
class S3Objects:
    """``s3://bucket/key``: the object ``key``, or every object whose key starts with it."""

    bucket: str
    key: str


@dataclass(frozen=True)
class Unverifiable:
    """A reference mlgate has no verdict source for (another scheme, a run, a logged-model id)."""

    scheme: str
    reason: str


Target = RegistryVersion | RegistryAlias | MutableSelector | S3Objects | Unverifiable


def parse_reference(uri: str) -> Target:
    """What verifying ``uri`` means. ``mlflow://models:/...`` (KServe's MLflow scheme) is unwrapped."""
    if uri.startswith("mlflow://"):
        uri = uri[len("mlflow://") :]
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "models":
        return _parse_models_uri(uri)
    if scheme == "s3":
        parts = urlsplit(uri)
        key = parts.path.lstrip("/")
        if not parts.netloc:
            return Unverifiable("s3", "the URI names no bucket")
        if parts.query or parts.fragment:
            return Unverifiable("s3", "query strings and fragments are not allowed in model URIs")
        return S3Objects(parts.netloc, key)
    if scheme == "runs":
        return Unverifiable("runs", "run artifacts carry no registry verdict; register the model and pin a version")
    if not scheme:
        return Unverifiable("path", "a local or PVC path carries no verdict")
    return Unverifiable(scheme, f"mlgate has no verdict source for {scheme}:// URIs")


def _parse_models_uri(uri: str) -> Target:
    """Split like MLflow's own ``_parse_model_uri`` so we verify exactly what the loader will fetch."""
    parsed = urlparse(uri, allow_fragments=False)
    if parsed.netloc:
        return Unverifiable("models", "models:// URIs naming another registry (profile or host) are not supported")
    if parsed.query or parsed.params:
        return Unverifiable("models", "query strings are not allowed in model URIs")
    path = parsed.path
    parts = path.lstrip("/").split("/")
    if not path.startswith("/") or len(parts) > 2 or not parts[0].strip():
        return Unverifiable("models", f"{uri} is not models:/<name>/<version> or models:/<name>@<alias>")
    if len(parts) == 2:
        name, suffix = parts
        if not suffix.strip():
            return Unverifiable("models", f"{uri} has an empty version")
        if suffix.isdigit():
            return RegistryVersion(name, suffix)
        return MutableSelector(name, suffix)
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not alias.strip():
            return Unverifiable("models", f"{uri} has an empty alias")
        return RegistryAlias(name, alias)
    return Unverifiable("models", "logged-model ids carry no registry verdict; register the model and pin a version")
