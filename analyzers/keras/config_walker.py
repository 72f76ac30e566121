"""The Keras config walker: one pass over a model's JSON config, whatever container held it.

``.keras`` ``config.json``, legacy ``.h5`` ``model_config``/``training_config``
and Keras-2 ``keras_metadata.pb`` node metadata all describe the model as
nested ``{"class_name", "config", "module", "registered_name"}`` dicts that
Keras' deserializer turns into objects. ``walk_config`` visits every dict
(layers, nested models, activations, initializers, losses, metrics,
optimizer, ``arguments``, ``inbound_nodes`` kwargs) and reports Lambda
bytecode, imports outside Keras (CVE-2025-1550), non-modelling Keras APIs
(CVE-2025-8747/9906), TorchModuleWrapper pickles (CVE-2025-49655), TFSMLayer
dependencies (CVE-2026-1462), file-path vocabularies (CVE-2025-12058),
path-traversing names (CVE-2026-12479) and custom objects. Nothing is
imported or unmarshalled: Lambda bytecode is read with ``marshal_names``.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from ..configs.sites import classify
from ..core.findings import Finding, Rule, Severity
from ..core.references import Reference
from ..embedded_code.catalogue import is_dangerous_module
from ..embedded_code.marshal_names import DANGEROUS_NAMES

ANALYZER = "keras"
MAX_JSON_DEPTH = 256

LAMBDA = Rule("MLG-KER-001", Severity.HIGH, "Keras Lambda layer carries Python bytecode", ANALYZER,
              cve=("CVE-2024-3660", "CVE-2025-9905"))  # fmt: skip
FOREIGN_IMPORT = Rule("MLG-KER-002", Severity.CRITICAL, "Keras config imports a function or class from outside Keras",
                      ANALYZER, cve=("CVE-2025-1550",))  # fmt: skip
NON_MODELING = Rule("MLG-KER-003", Severity.CRITICAL, "Keras config calls a non-modelling Keras API", ANALYZER,
                    cve=("CVE-2025-8747", "CVE-2025-9906"))  # fmt: skip
NAMED_FUNCTION = Rule(
    "MLG-KER-004", Severity.CRITICAL, "tf_keras Lambda resolves a function from another module", ANALYZER
)
TFOPLAMBDA = Rule(
    "MLG-KER-005", Severity.HIGH, "tf_keras TFOpLambda calls a TensorFlow I/O or Python-callback API", ANALYZER
)
TORCH_WRAPPER = Rule("MLG-KER-006", Severity.CRITICAL, "Keras TorchModuleWrapper unpickles a torch module", ANALYZER,
                     cve=("CVE-2025-49655",))  # fmt: skip
TFSM_LAYER = Rule(
    "MLG-KER-007", Severity.HIGH, "Keras TFSMLayer loads another SavedModel", ANALYZER, cve=("CVE-2026-1462",)
)
VOCAB_PATH = Rule("MLG-KER-008", Severity.HIGH, "Keras lookup layer reads its vocabulary from a file path", ANALYZER,
                  cve=("CVE-2025-12058",))  # fmt: skip
TYPESPEC = Rule("MLG-KER-009", Severity.HIGH, "Keras config names a type spec outside TensorFlow", ANALYZER)
CUSTOM_OBJECT = Rule("MLG-KER-010", Severity.LOW, "Keras model requires custom code", ANALYZER)
NAME_TRAVERSAL = Rule("MLG-KER-011", Severity.MEDIUM, "Keras layer or asset name traverses paths", ANALYZER,
                      cve=("CVE-2026-12479",))  # fmt: skip
UNMAPPED_FUNCTION = Rule(
    "MLG-KER-013", Severity.HIGH, "Keras config names a function Keras itself does not map", ANALYZER
)

KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp", "tf_keras"})
NAMED_FUNCTION_MODULES = frozenset({"keras", "tf_keras", "tensorflow", "numpy"})
NON_MODELING_APIS = frozenset(
    """keras.backend.clear_session keras.config.enable_unsafe_deserialization keras.models.load_model
    keras.models.model_from_json keras.models.save_model keras.preprocessing.image_dataset_from_directory
    keras.preprocessing.image.load_img keras.preprocessing.image.save_img
    keras.preprocessing.text_dataset_from_directory keras.saving.deserialize_keras_object keras.saving.load_model
    keras.saving.load_weights keras.saving.register_keras_serializable keras.saving.save_model
    keras.saving.save_weights keras.saving.serialize_keras_object keras.utils.audio_dataset_from_directory
    keras.utils.clear_session keras.utils.deserialize_keras_object keras.utils.get_file
    keras.utils.image_dataset_from_directory keras.utils.load_img keras.utils.register_keras_serializable
    keras.utils.save_img keras.utils.serialize_keras_object keras.utils.text_dataset_from_directory""".split()
)
# Internal modules whose functions toggle safety or load more models.
NON_MODELING_MODULES = ("keras.src.backend.common.global_state", "keras.src.saving", "keras.saving", "keras.models")
# Modules that hold no modelling class at all: any class or function named from them is non-modelling.
NON_MODELING_CLASS_MODULES = (
    "keras.src.backend.common.global_state", "keras.src.saving", "keras.saving", "keras.src.utils.file_utils",
    "keras.config", "keras.src.backend.config",
)  # fmt: skip


@cache
def keras_names() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(built-in function names Keras maps, non-modelling public APIs, their internal definitions).

    Read from ``keras_names.txt``, dumped from Keras 3's own registry by
    ``tests/fixtures/keras_tf/dump_keras_names.py`` (the scanner never imports Keras).
    """
    text = resources.files("mlgate.analyzers.keras").joinpath("keras_names.txt").read_text()
    sets: dict[str, set[str]] = {"builtin": set(), "nonmodeling": set(), "internal": set()}
    for line in text.splitlines():
        kind, _, name = line.partition(" ")
        if kind in sets and name:
            sets[kind].add(name.strip())
    return frozenset(sets["builtin"]), frozenset(sets["nonmodeling"]), frozenset(sets["internal"])


def non_modelling_api(module: str, name: str, registered: object) -> str | None:
    """The non-modelling Keras API that ``module`` + ``name`` (or ``registered``) resolves to, if any.

    Resolution follows ``_retrieve_class_or_fn``: ``module.name`` through Keras' export table
    (public names such as ``keras.utils.get_file``) or an import of ``module`` (internal paths such as
    ``keras.src.utils.file_utils.get_file``); ``registered_name`` is looked up as written.
    """
    _builtin, public, internal = keras_names()
    apis = NON_MODELING_APIS | public
    leaves = {api.rsplit(".", 1)[1] for api in apis | internal}
    candidates = []
    if name:
        candidates.append(f"{module}.{name}" if module else name)
    if isinstance(registered, str) and registered:
        candidates.append(registered.replace(">", "."))
        if module:
            candidates.append(f"{module}.{registered}")
    for full in candidates:
        if full in apis or full in internal:
            return full
    if module and _top(module) in KERAS_PACKAGES:
        if module.startswith(NON_MODELING_CLASS_MODULES):
            return f"{module}.{name}"
        if name in leaves:
            return f"{module}.{name}"
    return None


UNSAFE_TOGGLES = frozenset({"keras.config.enable_unsafe_deserialization", "set_global_attribute"})
LOOKUP_FIELDS = ("vocabulary", "idf_weights")
LAMBDA_FIELDS = ("function", "output_shape", "mask")
TFOP_DANGEROUS_PREFIXES = (
    ("io",), ("py_function",), ("numpy_function",), ("compat", "v1", "py_func"), ("saved_model",),
    ("keras", "models", "load_model"), ("print",), ("data", "TextLineDataset"), ("data", "TFRecordDataset"),
    ("data", "FixedLengthRecordDataset"), ("data", "experimental"), ("raw_ops", "ReadFile"), ("raw_ops", "WriteFile"),
)  # fmt: skip
_MARSHAL_B64 = re.compile(r"^\s*(4w|Yw)")
_PY_BUILTINS = frozenset(dir(builtins))


@dataclass
class ConfigScan:
    """What one config walk found: findings, references, and decoded payloads to scan as children."""

    findings: list[Finding] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    children: list[tuple[str, bytes]] = field(default_factory=list)  # (location, bytes) to walk as child artifacts
    lambdas: list[int] = field(default_factory=list)  # indexes of Lambda findings
    unsafe_toggle: bool = False


def walk_config(config: object, where: str, keras_version: str | None = None) -> ConfigScan:
    """Walk one decoded Keras config (any container); ``where`` prefixes every location."""
    scan = ConfigScan()
    _Walker(scan, where).visit(config, [], 0)
    if scan.unsafe_toggle:
        for i in scan.lambdas:  # CVE-2025-9906: safe mode switched off before the Lambda loads
            f = scan.findings[i]
            scan.findings[i] = LAMBDA.finding(
                f.location, f.message + "; safe mode is switched off earlier in the same config", Severity.CRITICAL
            )
    if keras_version and _older_than(keras_version, (3, 9)):
        scan.findings = [_raise(f, keras_version) for f in scan.findings]
    return scan


class _Walker:
    def __init__(self, scan: ConfigScan, where: str) -> None:
        self.scan = scan
        self.where = where

    def loc(self, path: list[str]) -> str:
        return f"{self.where}:{'/'.join(path) or '.'}"

    def add(self, finding: Finding) -> None:
        self.scan.findings.append(finding)

    def visit(self, value: object, path: list[str], depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            raise RecursionError("Keras config nested too deeply")
        if isinstance(value, dict):
            self.check_dict(value, path)
            for key, item in value.items():
                self.visit(item, [*path, str(key)], depth + 1)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.visit(item, [*path, _segment(item, i)], depth + 1)

    # ---------------------------------------------------------------------------- checks
    def check_dict(self, d: dict, path: list[str]) -> None:
        class_name = d.get("class_name")
        config = d.get("config")
        cfg = config if isinstance(config, dict) else {}
        layer = cfg.get("name") if isinstance(cfg.get("name"), str) else d.get("name")
        if isinstance(class_name, str):
            label = f"{class_name} layer {layer!r}" if isinstance(layer, str) else class_name
        else:
            label = f"layer {layer!r}" if isinstance(layer, str) else "object"
        if class_name == "__lambda__" and isinstance(cfg.get("code"), str):
            self.lambda_payload(cfg["code"], path, "Keras 3 Lambda function")
        for key in LAMBDA_FIELDS:
            type_key = "function_type" if key == "function" else f"{key}_type"
            if d.get(type_key) == "lambda":
                code = _tf_keras_code(d.get(key))
                if code is not None:
                    self.lambda_payload(code, [*path, key], f"{label}: tf_keras Lambda {key}")
        if class_name == "Lambda" and cfg.get("function_type") == "function":
            module = str(cfg.get("module") or "")
            if _top(module) not in NAMED_FUNCTION_MODULES:
                self.add(NAMED_FUNCTION.finding(
                    self.loc([*path, "config", "function"]),
                    f"{label} calls {module}.{cfg.get('function')} by name; tf_keras resolves it in that module at "
                    "load_model time even in safe mode",
                ))  # fmt: skip
        if isinstance(class_name, str) and self.non_modelling(d, class_name, path):
            pass
        elif isinstance(d.get("module"), str) and isinstance(class_name, str):
            self.module_ref(d, class_name, cfg, path, label)
        if class_name == "TorchModuleWrapper":
            self.torch_wrapper(cfg, path, label)
        if class_name == "TFSMLayer":
            self.tfsm_layer(cfg, path, label)
        if class_name == "TFOpLambda" and isinstance(cfg.get("function"), str):
            symbol = cfg["function"]
            parts = tuple(symbol.split("."))
            if any(parts[: len(p)] == p for p in TFOP_DANGEROUS_PREFIXES):
                self.add(TFOPLAMBDA.finding(
                    self.loc([*path, "config", "function"]),
                    f"{label} calls tf.{symbol} on every inference; "
                    "tf_keras resolves any public TF symbol without a safe-mode check",
                ))  # fmt: skip
        if class_name == "__typespec__":
            module = str(d.get("module") or cfg.get("module") or "")
            if _top(module) not in ("tensorflow", "keras", "tf_keras") and module:
                self.add(
                    TYPESPEC.finding(
                        self.loc(path), f"type spec from module {module!r} is imported when the config loads"
                    )
                )
        for key in LOOKUP_FIELDS:
            value = cfg.get(key)
            if isinstance(value, str) and isinstance(class_name, str):
                from ..savedmodel.paths import classify_path  # protobuf loads only for a lookup path

                risk = classify_path(value)
                sev = Severity.CRITICAL if risk.reasons else None
                why = f" ({', '.join(risk.reasons)})" if risk.reasons else ""
                self.add(VOCAB_PATH.finding(
                    self.loc([*path, "config", key]),
                    f"{label} reads {key} from the file {value!r}{why} when the model loads; a saved model never "
                    "stores a path here (Keras keeps vocabularies as assets)",
                    severity=sev,
                ))  # fmt: skip
        if isinstance(class_name, str) and isinstance(layer, str) and _bad_name(layer):
            self.add(NAME_TRAVERSAL.finding(
                self.loc(path),
                f"{class_name} name {layer!r} contains path separators or traversal; Keras builds weight/asset file "
                "paths from layer names",
            ))  # fmt: skip

    def non_modelling(self, d: dict, class_name: str, path: list[str]) -> bool:
        """Report a dict whose module + class_name/function name or registered_name is a non-modelling API."""
        module = d.get("module") if isinstance(d.get("module"), str) else ""
        if class_name == "function":
            name = d.get("config") if isinstance(d.get("config"), str) else d.get("registered_name")
            name = name if isinstance(name, str) else ""
            api = non_modelling_api(module, name, d.get("registered_name"))
            if api is None and module.startswith(NON_MODELING_MODULES):
                api = f"{module}.{name}"
            how = "calls"
        else:
            api = non_modelling_api(module, class_name, d.get("registered_name"))
            how = "uses as a class"
        if api is None:
            return False
        leaf = api.rsplit(".", 1)[-1]
        reg = d.get("registered_name")
        registered = f" (registered_name {reg!r})" if isinstance(reg, str) and reg else ""
        if api in UNSAFE_TOGGLES or leaf in UNSAFE_TOGGLES or leaf == "enable_unsafe_deserialization":
            self.scan.unsafe_toggle = True
        self.add(
            NON_MODELING.finding(
                self.loc(path),
                f"config {how} {api} while the model loads{registered}: a non-modelling Keras API (downloads, "
                "file loaders and savers, safety switches) that Keras versions before the fix resolve and run",
            )
        )
        return True

    def module_ref(self, d: dict, class_name: str, cfg: dict, path: list[str], label: str) -> None:
        module = d["module"]
        if class_name == "function":
            name = d.get("config") if isinstance(d.get("config"), str) else d.get("registered_name")
            full = f"{module}.{name}"
            if _top(module) in KERAS_PACKAGES:
                return
            elif module == "builtins" and isinstance(name, str) and name in keras_names()[0]:
                return  # Keras maps "builtins" + a name to its own keras.<activations|losses|...>.<name>
            elif module == "builtins" and isinstance(name, str) and name.partition(">")[0] in KERAS_PACKAGES:
                return  # "keras_hub>gelu_approximate": registered by a Keras package when it is imported
            elif module == "builtins" and isinstance(name, str) and name not in _PY_BUILTINS:
                self.unmapped_function(name, path)
            else:
                self.add(FOREIGN_IMPORT.finding(
                    self.loc(path),
                    f"config imports the function {full} and Keras calls it while loading the model "
                    "(arguments come from the config)",
                ))  # fmt: skip
            return
        if _top(module) in KERAS_PACKAGES or module == "builtins":
            return
        registered = d.get("registered_name")
        if (
            isinstance(registered, str)
            and registered
            and module not in ("builtins",)
            and _top(module) not in DANGEROUS_TOPS
        ):
            self.add(CUSTOM_OBJECT.finding(
                self.loc(path),
                f"{label} is the custom class {module}.{class_name} (registered as {registered!r}); loading needs that "
                "package's code on the host",
            ))  # fmt: skip
            return
        sev = Severity.CRITICAL if _top(module) in DANGEROUS_TOPS else Severity.HIGH
        self.add(FOREIGN_IMPORT.finding(
            self.loc(path),
            f"config imports the class {module}.{class_name}, outside Keras, while loading",
            severity=sev,
        ))  # fmt: skip

    def unmapped_function(self, name: str, path: list[str]) -> None:
        """``{"module": "builtins", "class_name": "function", "config": name}`` that Keras does not map."""
        parts = [p for p in re.split(r"[>.]", name) if p]
        dangerous = [p for p in parts if p in DANGEROUS_NAMES or p in _PY_BUILTINS]
        if not dangerous and is_dangerous_module(name.replace(">", ".")):
            dangerous = [name]
        where = "a Lambda layer's function" if path[-1:] == ["function"] else "a function reference"
        message = (
            f"{where} names {name!r} under module 'builtins', which is neither a Keras built-in "
            "(keras.activations/losses/metrics/initializers/...) nor resolvable inside Keras: Keras looks it up "
            "in whatever the loading process registered (register_keras_serializable, custom_objects) and calls it"
        )
        if dangerous:
            message += f"; the name is in the dangerous catalogue ({', '.join(dangerous)})"
        self.add(UNMAPPED_FUNCTION.finding(self.loc(path), message, severity=Severity.CRITICAL if dangerous else None))

    def lambda_payload(self, b64: str, path: list[str], what: str) -> None:
        names, note = lambda_names(b64)
        dangerous = _dangerous(names)
        severity = Severity.CRITICAL if dangerous else None
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        message = f"{what} is marshalled Python bytecode that runs inside load_model"
        if dangerous:
            message += f"; it uses {', '.join(dangerous)}"
        message += f" (names: {shown})" if names else f" ({note})"
        self.scan.lambdas.append(len(self.scan.findings))
        self.add(LAMBDA.finding(self.loc(path), message, severity=severity))

    def torch_wrapper(self, cfg: dict, path: list[str], label: str) -> None:
        encoded = cfg.get("module")
        message = f"{label} holds a torch module that Keras unpickles with torch.load(weights_only=False) on load"
        if isinstance(encoded, str):
            try:
                data = base64.b64decode(encoded, validate=False)
            except (binascii.Error, ValueError):
                data = b""
            if data:
                name = self.loc([*path, "config", "module"])
                self.scan.children.append((name, data))
                message += f"; the {len(data)}-byte payload is scanned as {name}"
        self.add(TORCH_WRAPPER.finding(self.loc(path), message))

    def tfsm_layer(self, cfg: dict, path: list[str], label: str) -> None:
        filepath = cfg.get("filepath")
        where = self.loc([*path, "config", "filepath"])
        if isinstance(filepath, str) and filepath:
            target = classify(filepath, hub_ids=False)
            self.scan.references.append(Reference(target.kind, target.ref, where, field="TFSMLayer.filepath"))
            self.add(
                TFSM_LAYER.finding(
                    where,
                    f"{label} loads the SavedModel at {filepath!r} when this model loads; "
                    "that model must be scanned too",
                )
            )
        else:
            self.add(TFSM_LAYER.finding(where, f"{label} loads another SavedModel (path not readable from the config)"))


DANGEROUS_TOPS = frozenset(
    "os posix nt subprocess builtins __builtin__ importlib runpy pickle marshal shutil socket urllib urllib2 urllib3 "
    "requests httpx ctypes pty code codeop sys webbrowser multiprocessing pdb commands platform tempfile "
    "asyncio shelve dill cloudpickle joblib torch".split()
)


def lambda_names(b64: str) -> tuple[list[str], str]:
    """Identifiers used by a base64 marshalled code object, read without unmarshalling it."""
    try:
        data = base64.b64decode(b64, validate=False)
    except (binascii.Error, ValueError):
        return [], "payload is not valid base64"
    try:
        from ..embedded_code.marshal_names import code_names
    except ImportError:  # pragma: no cover - marshal_names ships with the pickle analyzer
        return [], "bytecode names not extracted: marshal reader unavailable"
    try:
        return list(code_names(data)), ""
    except Exception as exc:  # noqa: BLE001 - Malformed or any decode error: report, keep the finding
        return [], f"bytecode could not be read: {exc}"


def _dangerous(names: list[str]) -> list[str]:
    if not names:
        return []
    try:
        from ..embedded_code.marshal_names import dangerous_code_names
    except ImportError:  # pragma: no cover
        return []
    return list(dangerous_code_names(names))


def _tf_keras_code(value: object) -> str | None:
    """The base64 bytecode of a tf_keras Lambda field: ``[code, defaults, closure]`` or a ``__tuple__`` dict."""
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        value = value.get("items")
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    if isinstance(value, str) and _MARSHAL_B64.match(value):
        return value
    return None


def _segment(item: object, i: int) -> str:
    if isinstance(item, dict):
        cfg = item.get("config")
        name = cfg.get("name") if isinstance(cfg, dict) else None
        name = name if isinstance(name, str) else item.get("name")
        if isinstance(name, str) and name:
            return name
    return str(i)


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _bad_name(name: str) -> bool:
    norm = name.replace("\\", "/")
    return "/" in norm or "\x00" in name or ".." in norm or bool(re.match(r"^[A-Za-z]:", name))


def _older_than(version: str, bound: tuple[int, int]) -> bool:
    m = re.match(r"^(\d+)\.(\d+)", version)
    return bool(m) and (int(m.group(1)), int(m.group(2))) < bound


def _raise(f: Finding, version: str) -> Finding:
    if f.rule in (CUSTOM_OBJECT.id,) or f.severity >= Severity.CRITICAL:
        return f
    rule = next(r for r in _ALL if r.id == f.rule)
    return rule.finding(
        f.location,
        f"{f.message}; saved by Keras {version}, whose loader has no safe-mode fix",
        Severity(f.severity + 1),
    )


_ALL = (LAMBDA, FOREIGN_IMPORT, NON_MODELING, NAMED_FUNCTION, TFOPLAMBDA, TORCH_WRAPPER, TFSM_LAYER, VOCAB_PATH,
        TYPESPEC, CUSTOM_OBJECT, NAME_TRAVERSAL, UNMAPPED_FUNCTION)  # fmt: skip
