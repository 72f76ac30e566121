"""Build the ONNX folders of the benign suite from tiny transformers models.

Needs torch, onnx, onnxscript, onnxruntime (its transformers optimizer and quantizer), transformers 4.x::

    python tests/benign/build_onnx.py

- ``bert-onnx``: ``torch.onnx.export`` (the dynamo exporter, torch's default) of a tiny BERT, laid out
  as Optimum / transformers.js repositories are (``config.json``, tokenizer files, ``onnx/model.onnx``),
  plus ``onnx/model_optimized.onnx`` from onnxruntime's transformer optimizer (fused ``com.microsoft``
  contrib ops: Attention, SkipLayerNormalization, EmbedLayerNormalization, FastGelu/BiasGelu) and
  ``onnx/model_quantized.onnx`` from ``quantize_dynamic`` (int8).
- ``vit-onnx``: the TorchScript-based exporter (``dynamo=False``) of a tiny ViT with its processor config.
- ``onnx-external-data``: a GPT-2 export whose weights live in ``model.onnx.data`` (external data).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_transformers import TINY, bert_tokenizer
from common import fresh, scratch, scrub_local_paths, seed_everything


def build_bert_onnx() -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import BertConfig, BertModel

    tok = bert_tokenizer()
    config = BertConfig(vocab_size=len(tok), max_position_embeddings=64, **TINY)
    model = BertModel(config).eval()
    out = fresh("bert-onnx")
    config.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "onnx").mkdir()
    ids = torch.ones(1, 8, dtype=torch.long)
    mask = torch.ones(1, 8, dtype=torch.long)
    types = torch.zeros(1, 8, dtype=torch.long)
    batch, seq = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length", max=64)
    program = torch.onnx.export(
        model,
        (ids, mask, types),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state", "pooler_output"],
        dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}, {0: batch, 1: seq}),
        dynamo=True,
    )
    save_scrubbed(program, out / "onnx" / "model.onnx")

    # The ORT optimizer fuses best on the TorchScript exporter's graph: export that one for it.
    legacy = scratch("bert-onnx-legacy") / "model.onnx"
    torch.onnx.export(
        model,
        (ids, mask, types),
        str(legacy),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state", "pooler_output"],
        dynamic_axes={
            name: {0: "batch_size", 1: "sequence_length"} for name in ("input_ids", "attention_mask", "token_type_ids")
        },
        opset_version=17,
        dynamo=False,
    )
    optimized = optimize_model(str(legacy), model_type="bert", num_heads=2, hidden_size=16, opt_level=1)
    optimized.save_model_to_file(str(out / "onnx" / "model_optimized.onnx"))
    domains = {n.domain for n in onnx.load(str(out / "onnx" / "model_optimized.onnx")).graph.node}
    assert "com.microsoft" in domains, f"the optimizer emitted no contrib op: {domains}"
    quantize_dynamic(str(legacy), str(out / "onnx" / "model_quantized.onnx"), weight_type=QuantType.QInt8)


def build_vit_onnx() -> None:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32, patch_size=8, id2label={0: "cat", 1: "dog"}, label2id={"cat": 0, "dog": 1}, **TINY
    )
    model = ViTForImageClassification(config).eval()
    out = fresh("vit-onnx")
    config.save_pretrained(out)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 32, 32),),
        str(out / "model.onnx"),
        input_names=["pixel_values"],
        output_names=["logits"],
        dynamic_axes={"pixel_values": {0: "batch_size"}, "logits": {0: "batch_size"}},
        opset_version=17,
        dynamo=False,
    )


def build_external_data() -> None:
    import onnx
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=128, n_positions=32, n_embd=16, n_layer=2, n_head=2, use_cache=False))
    model.config.return_dict = False
    model.eval()
    out = fresh("onnx-external-data")
    model.config.save_pretrained(out)
    seq = torch.export.Dim("sequence_length", min=2, max=32)
    program = torch.onnx.export(
        model,
        (torch.ones(1, 8, dtype=torch.long),),
        input_names=["input_ids"],
        output_names=["logits"],
        dynamic_shapes=({1: seq},),
        dynamo=True,
    )
    save_scrubbed(program, out / "model.onnx", external_data=True)
    proto = onnx.load(str(out / "model.onnx"), load_external_data=False)
    located = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    assert located, "no initializer was written as external data"


def save_scrubbed(program, path: Path, **kwargs) -> None:
    """Save a dynamo ONNXProgram, then make this machine's paths in its node stack traces neutral."""
    import onnx

    program.save(str(path), **kwargs)
    proto = onnx.load(str(path), load_external_data=False)

    def scrub(nodes) -> None:
        for node in nodes:
            for prop in node.metadata_props:
                prop.value = scrub_local_paths(prop.value)
            for attr in node.attribute:
                if attr.g is not None:
                    scrub(attr.g.node)
                for graph in attr.graphs:
                    scrub(graph.node)

    scrub(proto.graph.node)
    for function in proto.functions:
        scrub(function.node)
    for prop in proto.metadata_props:
        prop.value = scrub_local_paths(prop.value)
    onnx.save_model(proto, str(path))  # external tensors keep their location entries; the data file is untouched


BUILDERS = [build_bert_onnx, build_vit_onnx, build_external_data]


def main(only: list[str]) -> None:
    for build in BUILDERS:
        if only and build.__name__[len("build_") :] not in only:
            continue
        seed_everything(0)
        build()
        print(f"built {build.__name__[len('build_') :]}")


if __name__ == "__main__":
    main(sys.argv[1:])
