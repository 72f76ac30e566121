"""Build the GGUF folders of the benign suite with the ``gguf`` package (llama.cpp's writer).

Needs gguf, numpy, sentencepiece::

    python tests/benign/build_gguf.py

Each file carries what llama.cpp's converter writes for a Llama model: general metadata, the
hyper-parameters, a sentencepiece vocabulary (tokens, scores, token types) from a tiny trained model,
a real-world-style chat template (loops, filters, ``raise_exception``; named templates as
``tokenizer.chat_template.<name>``) and tensors named as llama.cpp names them: F32 + F16
(``gguf-llama-f16``), Q8_0 quantized by ``gguf.quants`` (``gguf-llama-q8_0``), and a two-shard split
(``gguf-llama-split``, ``split.*`` keys as ``gguf-split`` writes them).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_templates import CHATML_TOOLS, LLAMA2_CHAT, LLAMA3_TOOLS
from common import fresh, scratch, seed_everything, train_sentencepiece

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS = 32, 64, 2, 2, 1  # Q8_0 blocks need rows of 32


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    import gguf
    import sentencepiece as spm

    model = train_sentencepiece(
        scratch("gguf-spm") / "sp",
        model_type="bpe",
        vocab_size=300,
        byte_fallback=True,
        pad_id=-1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        normalization_rule_name="identity",
    )
    sp = spm.SentencePieceProcessor(model_file=str(model))
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    return tokens, scores, types


def tensors(n_vocab: int):
    import numpy as np

    rng = np.random.default_rng(0)
    kv = HIDDEN // HEADS * KV_HEADS
    out = {"token_embd.weight": (n_vocab, HIDDEN), "output_norm.weight": (HIDDEN,), "output.weight": (n_vocab, HIDDEN)}
    for i in range(LAYERS):
        out |= {
            f"blk.{i}.attn_norm.weight": (HIDDEN,),
            f"blk.{i}.attn_q.weight": (HIDDEN, HIDDEN),
            f"blk.{i}.attn_k.weight": (kv, HIDDEN),
            f"blk.{i}.attn_v.weight": (kv, HIDDEN),
            f"blk.{i}.attn_output.weight": (HIDDEN, HIDDEN),
            f"blk.{i}.ffn_norm.weight": (HIDDEN,),
            f"blk.{i}.ffn_gate.weight": (FFN, HIDDEN),
            f"blk.{i}.ffn_up.weight": (FFN, HIDDEN),
            f"blk.{i}.ffn_down.weight": (HIDDEN, FFN),
        }
    return {name: rng.normal(0, 0.02, shape).astype(np.float32) for name, shape in out.items()}


def write_metadata(writer, name: str, file_type: int, vocab, templates: dict[str, str]) -> None:
    import gguf

    tokens, scores, types = vocab
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_basename("tiny-llama")
    writer.add_size_label("33K")
    writer.add_license("apache-2.0")
    writer.add_tags(["text-generation", "benign-suite"])
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(file_type)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    default = templates.pop("default")
    if templates:  # llama.cpp's converter: the default template plus a list of named ones
        writer.add_chat_template(
            [{"name": "default", "template": default}] + [{"name": k, "template": v} for k, v in templates.items()]
        )
    else:
        writer.add_chat_template(default)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def build_f16() -> None:
    import gguf
    import numpy as np

    vocab = vocabulary()
    path = fresh("gguf-llama-f16") / "tiny-llama-F16.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    write_metadata(writer, "Tiny Llama Chat", gguf.LlamaFileType.MOSTLY_F16, vocab, {"default": LLAMA2_CHAT})
    for name, data in tensors(len(vocab[0])).items():
        writer.add_tensor(name, data if data.ndim == 1 else data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def build_q8_0() -> None:
    import gguf

    vocab = vocabulary()
    path = fresh("gguf-llama-q8_0") / "tiny-llama-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    templates = {"default": LLAMA3_TOOLS, "tool_use": CHATML_TOOLS}
    write_metadata(writer, "Tiny Llama Instruct", gguf.LlamaFileType.MOSTLY_Q8_0, vocab, templates)
    for name, data in tensors(len(vocab[0])).items():
        if data.ndim == 1:
            writer.add_tensor(name, data)
        else:
            qtype = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def build_split() -> None:
    """Two shards as llama.cpp's gguf-split writes them (split.no / split.count / split.tensors.count)."""
    import gguf

    vocab = vocabulary()
    out = fresh("gguf-llama-split")
    named = list(tensors(len(vocab[0])).items())
    halves = [named[: len(named) // 2], named[len(named) // 2 :]]
    for index, part in enumerate(halves):
        path = out / f"tiny-llama-F32-{index + 1:05d}-of-{len(halves):05d}.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        if index == 0:
            write_metadata(writer, "Tiny Llama Chat", gguf.LlamaFileType.ALL_F32, vocab, {"default": CHATML_TOOLS})
        writer.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_NO, index)
        writer.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_COUNT, len(halves))
        writer.add_int32(gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, len(named))
        for name, data in part:
            writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


BUILDERS = [build_f16, build_q8_0, build_split]


def main(only: list[str]) -> None:
    for build in BUILDERS:
        if only and build.__name__[len("build_") :] not in only:
            continue
        seed_everything(0)
        build()
        print(f"built {build.__name__[len('build_') :]}")


if __name__ == "__main__":
    main(sys.argv[1:])
