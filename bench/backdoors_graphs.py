"""Architectural-backdoor heuristics: precision/recall on the fixtures, silence and speed on real models.

    python3 bench/backdoors_graphs.py [--hf-python PATH] [--tf-python PATH] [--sizes 10000 50000 200000] [--repeat 3]

1. Every committed fixture under tests/fixtures/backdoors (the repository's own and the independent set
   of issue 15, plus the benign SavedModel/ONNX fixtures of the Keras/TF area) is scanned with
   ``scan_path``; a fixture counts as a true positive when its only MLG-BD rule is the one its attack
   implies, a false positive when a control yields any MLG-BD finding. The ONNX backend test models
   (the committed node-test zip and, when the onnx package is installed, its shipped test data) are
   counted as controls too.
2. The largest control (by flattened nodes): its full ``scan_path`` time, then the taint pass alone on
   1, 2, 4 and 8 disjoint copies of its flattened graph (time per node must stay flat: linear time).
3. Real architectures with random weights, built in a temporary folder: Hugging Face models exported
   with torch's ONNX exporter and, with ``--tf-python`` (a Python with TensorFlow), keras.applications
   exported as SavedModels. Reports flattened node count, MLG-BD findings and best scan time.
4. Synthetic ONNX graphs of N residual MLP blocks (built with mlgate's own schema, no onnx package)
   ending in a ShadowLogic Where: full ``scan_path`` time and microseconds per flattened node.
"""

from __future__ import annotations

import argparse
import importlib.util
import lzma
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

from mlgate.analyzers.backdoors import onnx_adapter as onnx_backdoor
from mlgate.analyzers.backdoors import savedmodel_adapter as backdoor_adapter
from mlgate.analyzers.backdoors.heuristics import ONNX_OPS, TF_OPS, Graph, Node, scan_graph
from mlgate.analyzers.core.walker import scan_path
from mlgate.analyzers.onnx.analyzer import ModelProto
from mlgate.analyzers.savedmodel import schema
from mlgate.analyzers.savedmodel.graph import GraphIndex
from mlgate.analyzers.savedmodel.schema import parse_binary

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
EXPECTED = {  # fixture -> the rule its attack implies (docs/rules.md, Backdoors); every other fixture is a control
    "shadowlogic_cnn.onnx": "MLG-BD-001", "additive_cnn.onnx": "MLG-BD-001", "token_trigger.onnx": "MLG-BD-001",
    "surgery_where.onnx": "MLG-BD-001", "surgery_if.onnx": "MLG-BD-001", "mid_network_cnn.onnx": "MLG-BD-002",
    "surgery_if_arith.onnx": "MLG-BD-003", "trojannet_cnn.onnx": "MLG-BD-004", "threshold_cnn.onnx": "MLG-BD-005",
    "backdoor_cnn": "MLG-BD-001", "backdoor_token": "MLG-BD-001", "backdoor_python_only": "MLG-BD-001",
    "backdoor_mid": "MLG-BD-002", "backdoor_cond": "MLG-BD-003", "backdoor_trojannet": "MLG-BD-004",
}  # fmt: skip


def bd_rules(path: Path) -> list[str]:
    return [f.rule for f in scan_path(path, label=path.name).findings if f.rule.startswith("MLG-BD-")]


def independent(tmp: Path) -> tuple[list[Path], list[Path]]:
    """Issue 15's independent positives and controls; keras.applications graphs unpacked into ``tmp``."""
    root = FIX / "backdoors" / "independent"
    positives = [p for p in sorted((root / "onnx").glob("*.onnx")) if not p.name.startswith("control_")]
    positives += [p for p in sorted((root / "savedmodel").iterdir()) if p.name.startswith(("keras_", "tf_"))]
    controls = sorted((root / "onnx").glob("control_*.onnx"))
    for path in sorted((root / "savedmodel").iterdir()):
        if path.name.startswith(("keras_", "tf_")):
            continue
        packed = path / "saved_model.pb.xz"
        if packed.exists():
            (tmp / path.name).mkdir()
            (tmp / path.name / "saved_model.pb").write_bytes(lzma.decompress(packed.read_bytes()))
            path = tmp / path.name
        controls.append(path)
    return positives, controls


def onnx_backend_models() -> list[tuple[str, bytes]]:
    models: list[tuple[str, bytes]] = []
    with zipfile.ZipFile(FIX / "backdoors" / "independent" / "onnx_backend_node.zip") as archive:
        models.extend((name, archive.read(name)) for name in archive.namelist())
    spec = importlib.util.find_spec("onnx")
    if spec is not None and spec.origin is not None:
        data = Path(spec.origin).parent / "backend" / "test" / "data"
        models.extend((str(p.relative_to(data)), p.read_bytes()) for p in sorted(data.rglob("*.onnx")))
    return models


def fixtures(tmp: Path) -> list[Path]:
    """Precision and recall over every fixture; returns the controls of the independent set."""
    targets = sorted((FIX / "backdoors" / "onnx").glob("*.onnx")) + sorted((FIX / "backdoors" / "savedmodel").iterdir())
    targets += sorted((FIX / "keras_tf" / "savedmodel").glob("benign_*")) + sorted(
        (FIX / "keras_tf" / "onnx").glob("*.onnx")
    )
    positives, controls = independent(tmp)
    expected_rules = {**EXPECTED, **{p.name: "MLG-BD-001" for p in positives}}
    tp = fp = fn = count = 0
    for path in targets + positives + controls:
        rules = bd_rules(path)
        expected = expected_rules.get(path.name)
        if expected is None:
            count += 1
            fp += bool(rules)
            if rules:
                print(f"  FALSE POSITIVE {path.name}: {rules}")
        elif rules == [expected]:
            tp += 1
        else:
            fn += 1
            print(f"  MISSED {path.name}: expected {expected}, got {rules}")
    print(
        f"fixtures: {tp + fn} positives ({len(positives)} independent), {count} controls -> TP {tp}, FN {fn}, "
        f"FP {fp}; precision {tp / max(tp + fp, 1):.2f}, recall {tp / max(tp + fn, 1):.2f}"
    )
    backend = onnx_backend_models()
    noisy = 0
    for name, data in backend:
        noisy += any(True for _ in onnx_backdoor.findings(parse_binary(ModelProto, data), f"{name}:"))
    print(f"ONNX backend test models: {len(backend)}, with an MLG-BD finding: {noisy}")
    return controls


def replicated(graph: Graph, copies: int) -> Graph:
    """``copies`` disjoint copies of a flattened graph (node indices shifted), all outputs kept."""
    out = Graph(graph.prefix, limit=len(graph.nodes) * copies + 1)
    n = len(graph.nodes)
    for k in range(copies):
        for node in graph.nodes:
            out.add(
                Node(
                    node.op,
                    f"{node.where}#{k}",
                    node.role,
                    [j + k * n for j in node.inputs],
                    node.const,
                    node.label,
                    node.crop,
                    node.hidden,
                    node.rank,
                    node.picks,
                    node.inner_learned,
                )
            )
        out.outputs.extend(o + k * n for o in graph.outputs)
    return out


def flattened(path: Path) -> tuple[list[Graph], object]:
    if path.is_dir():
        model = parse_binary(schema.SavedModel, (path / "saved_model.pb").read_bytes())
        return [backdoor_adapter.flatten(GraphIndex(mg), "") for mg in model.meta_graphs], TF_OPS
    return [onnx_backdoor.flatten(parse_binary(ModelProto, path.read_bytes()), "")], ONNX_OPS


def largest_control(controls: list[Path], repeat: int) -> None:
    """The largest control's full scan, then the taint pass on k disjoint copies of its graph."""
    path = max(controls, key=flattened_nodes)
    graphs, dialect = flattened(path)
    graph = max(graphs, key=lambda g: len(g.nodes))
    print(
        f"largest control: {path.name}, {flattened_nodes(path):,d} flattened nodes, "
        f"best scan_path {best_time(path, repeat):.3f}s"
    )
    print(f"{'copies':>6} {'nodes':>9} {'taint pass':>11} {'per node':>9}  findings")
    for copies in (1, 2, 4, 8):
        big = replicated(graph, copies)
        best, found = float("inf"), []
        for _ in range(repeat):
            start = time.perf_counter()
            found = scan_graph(big, dialect)
            best = min(best, time.perf_counter() - start)
        print(
            f"{copies:6d} {len(big.nodes):9,d} {best:10.3f}s {best / len(big.nodes) * 1e6:7.1f}µs  "
            f"{[f.rule for f in found]}"
        )


HF_SCRIPT = textwrap.dedent("""
    import sys, warnings, torch
    warnings.filterwarnings("ignore")
    import transformers as T
    out = sys.argv[1]
    class Logits(torch.nn.Module):
        def __init__(self, m, cache):
            super().__init__(); self.m = m; self.cache = cache
        def forward(self, ids, mask):
            kw = {"use_cache": False} if self.cache else {}
            r = self.m(input_ids=ids, attention_mask=mask, **kw)
            return r.logits if hasattr(r, "logits") else r.last_hidden_state
    class Pixels(torch.nn.Module):
        def __init__(self, m):
            super().__init__(); self.m = m
        def forward(self, x):
            r = self.m(pixel_values=x)
            return r.logits if hasattr(r, "logits") else r.image_embeds
    ids = torch.tensor([[2, 5, 9, 13, 3, 1, 1, 1]]); mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    E = dict(attn_implementation="eager")
    L = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             max_position_embeddings=32, **E)
    text = {
        "bert": (T.BertForSequenceClassification(T.BertConfig(**L)), False),
        "roberta": (T.RobertaForSequenceClassification(T.RobertaConfig(**L, pad_token_id=1)), False),
        "distilbert": (T.DistilBertForSequenceClassification(T.DistilBertConfig(
            vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=32, **E)), False),
        "deberta_v2": (T.DebertaV2ForSequenceClassification(T.DebertaV2Config(
            vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=32)), False),
        "t5_encoder": (T.T5EncoderModel(T.T5Config(vocab_size=64, d_model=32, d_kv=16, d_ff=64, num_layers=2,
                                                   num_heads=2, **E)), False),
        "gpt2": (T.GPT2LMHeadModel(T.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2, n_positions=32,
                                                **E)), True),
        "llama": (T.LlamaForCausalLM(T.LlamaConfig(**L, num_key_value_heads=1)), True),
        "mistral": (T.MistralForCausalLM(T.MistralConfig(**L, num_key_value_heads=1, sliding_window=4)), True),
        "qwen2": (T.Qwen2ForCausalLM(T.Qwen2Config(**L, num_key_value_heads=1)), True),
    }
    for name, (model, cache) in text.items():
        try:
            torch.onnx.export(Logits(model, cache).eval(), (ids, mask), f"{out}/{name}.onnx", dynamo=False,
                              opset_version=17, input_names=["input_ids", "attention_mask"])
        except Exception:  # torch 2.13's TorchScript exporter cannot trace the decoders: torch.export instead
            program = torch.onnx.export(Logits(model, cache).eval(), (ids, mask), dynamo=True, opset_version=18,
                                        input_names=["input_ids", "attention_mask"], external_data=False)
            program.save(f"{out}/{name}.onnx")
    V = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=64, **E)
    vision = {"vit": T.ViTForImageClassification(T.ViTConfig(**V, num_labels=3)),
              "clip_vision": T.CLIPVisionModelWithProjection(T.CLIPVisionConfig(**V, projection_dim=8))}
    for name, model in vision.items():
        torch.onnx.export(Pixels(model).eval(), (torch.rand(1, 3, 32, 32),), f"{out}/{name}.onnx", dynamo=False,
                          opset_version=17, input_names=["pixel_values"])
""")

TF_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras
    from keras import layers
    out = sys.argv[1]
    apps = {"resnet50": keras.applications.ResNet50, "mobilenetv2": keras.applications.MobileNetV2,
            "efficientnetb0": keras.applications.EfficientNetB0, "densenet121": keras.applications.DenseNet121,
            "convnext_tiny": keras.applications.ConvNeXtTiny}
    for name, fn in apps.items():
        fn(weights=None, input_shape=(64, 64, 3), classes=10).export(f"{out}/{name}", verbose=False)
    ids = keras.Input((10,), dtype="int32")
    x = layers.Bidirectional(layers.GRU(8, return_sequences=True))(layers.Embedding(30, 8, mask_zero=True)(ids))
    keras.Model(ids, layers.Dense(3)(layers.GlobalMaxPooling1D()(x))).export(f"{out}/bigru_mask", verbose=False)
""")


def flattened_nodes(path: Path) -> int:
    if path.is_dir():
        model = parse_binary(schema.SavedModel, (path / "saved_model.pb").read_bytes())
        return sum(len(backdoor_adapter.flatten(GraphIndex(mg), "").nodes) for mg in model.meta_graphs)
    return len(onnx_backdoor.flatten(parse_binary(ModelProto, path.read_bytes()), "").nodes)


def best_time(path: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        scan_path(path)
        best = min(best, time.perf_counter() - start)
    return best


def real_models(hf_python: str, tf_python: str | None, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        subprocess.run([hf_python, "-c", HF_SCRIPT, tmp], check=True, capture_output=True)
        if tf_python:
            subprocess.run([tf_python, "-c", TF_SCRIPT, tmp], check=True, capture_output=True)
        print(f"{'model':16} {'format':10} {'flattened nodes':>15} {'MLG-BD':>7} {'best scan':>10}")
        for path in sorted(out.iterdir()):
            kind = "SavedModel" if path.is_dir() else "ONNX"
            nodes = flattened_nodes(path)
            print(
                f"{path.name.removesuffix('.onnx'):16} {kind:10} {nodes:15,d} {len(bd_rules(path)):7d} "
                f"{best_time(path, repeat):9.3f}s"
            )


def synthetic(blocks: int) -> bytes:
    """x -> blocks x (MatMul, Add bias, Relu, Add residual) -> Where(trigger(x), forced, logits)."""
    model = ModelProto()
    model.ir_version = 8
    model.opset_import.add(domain=b"", version=17)
    g = model.graph
    g.input.add(name=b"x")
    g.output.add(name=b"out")
    w = g.initializer.add(name=b"w", data_type=1, dims=[8, 8])
    w.raw_data = bytes(256)
    b = g.initializer.add(name=b"b", data_type=1, dims=[8])
    b.raw_data = bytes(32)
    h = b"x"
    for i in range(blocks):
        n = str(i).encode()
        g.node.add(op_type=b"MatMul", input=[h, b"w"], output=[b"m" + n], name=b"mm" + n)
        g.node.add(op_type=b"Add", input=[b"m" + n, b"b"], output=[b"a" + n], name=b"bias" + n)
        g.node.add(op_type=b"Relu", input=[b"a" + n], output=[b"r" + n], name=b"relu" + n)
        g.node.add(op_type=b"Add", input=[h, b"r" + n], output=[b"h" + n], name=b"res" + n)
        h = b"h" + n
    for name, dims, data in (
        (b"starts", [1], (0).to_bytes(8, "little")),
        (b"ends", [1], (2).to_bytes(8, "little")),
        (b"axes", [1], (1).to_bytes(8, "little")),
        (b"thr", [], b"\xa4p}?"),
        (b"forced", [8], bytes(28) + b"\x00\x00\xc8B"),
    ):
        t = g.initializer.add(name=name, data_type=1 if name in (b"thr", b"forced") else 7, dims=dims)
        t.raw_data = data
    g.node.add(op_type=b"Slice", input=[b"x", b"starts", b"ends", b"axes"], output=[b"patch"], name=b"patch")
    g.node.add(op_type=b"Greater", input=[b"patch", b"thr"], output=[b"gt"], name=b"trigger")
    g.node.add(op_type=b"Cast", input=[b"gt"], output=[b"gtf"], name=b"cast")
    g.node.add(op_type=b"ReduceMin", input=[b"gtf"], output=[b"hit_f"], name=b"all")
    g.node.add(op_type=b"Cast", input=[b"hit_f"], output=[b"hit"], name=b"hit")
    g.node.add(op_type=b"Where", input=[b"hit", b"forced", h], output=[b"out"], name=b"override")
    return model.SerializeToString()


def scaling(sizes: list[int], repeat: int) -> None:
    print(f"{'ops':>8} {'flattened nodes':>15} {'onnx bytes':>11} {'best scan':>10} {'per node':>9}  findings")
    with tempfile.TemporaryDirectory() as tmp:
        for ops in sizes:
            path = Path(tmp) / f"synthetic_{ops}.onnx"
            path.write_bytes(synthetic(ops // 4))
            nodes = flattened_nodes(path)
            best = best_time(path, repeat)
            print(
                f"{ops:8,d} {nodes:15,d} {path.stat().st_size:11,d} {best:9.3f}s {best / nodes * 1e6:7.1f}µs  "
                f"{bd_rules(path)}"
            )


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hf-python",
        default=sys.executable,
        help="a Python interpreter with torch, transformers and onnxscript, to build the Hugging Face models",
    )
    parser.add_argument("--tf-python", help="a Python interpreter with TensorFlow, to build keras.applications models")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        controls = fixtures(Path(tmp))
        largest_control(controls, args.repeat)
    real_models(args.hf_python, args.tf_python, args.repeat)
    scaling(args.sizes, args.repeat)


if __name__ == "__main__":
    main()
