"""Build the transformers part of the benign suite: tiny random-weight models saved by save_pretrained.

Needs torch, transformers 4.x (4.57 writes both safetensors and ``pytorch_model.bin`` and the legacy
vocabulary files the Hub is full of), tokenizers, sentencepiece, peft, huggingface_hub::

    python tests/benign/build_transformers.py

Every model is saved twice, ``<name>`` (``model.safetensors``) and ``<name>-bin``
(``pytorch_model.bin``, ``safe_serialization=False``), with its tokenizer or processor saved by the
library into the same folder, as a Hub repository holds them. No file is downloaded: tokenizers come
from small vocabulary files written by ``common.py`` or trained with sentencepiece.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_templates import CHATML_TOOLS, LLAMA2_CHAT, LLAMA3_TOOLS
from common import (
    fresh,
    scratch,
    seed_everything,
    train_bytelevel_bpe,
    train_sentencepiece,
    write_wordpiece_vocab,
)

TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)


def save_both(name: str, model, *savers) -> None:
    """Save model + tokenizer/processor as ``name`` (safetensors) and ``name-bin`` (pytorch_model.bin)."""
    for folder, safe in ((name, True), (f"{name}-bin", False)):
        out = fresh(folder)
        model.save_pretrained(out, safe_serialization=safe)
        for saver in savers:
            saver.save_pretrained(out)


# --- tokenizers -----------------------------------------------------------------------------------
def bert_tokenizer():
    from transformers import BertTokenizerFast

    vocab = write_wordpiece_vocab(scratch("bert-vocab") / "vocab.txt")
    return BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True, model_max_length=64)


def bpe_files(name: str) -> tuple[Path, Path]:
    return train_bytelevel_bpe(scratch(name), vocab_size=300)


def sp_model(name: str, **kwargs) -> Path:
    return train_sentencepiece(scratch(name) / "sp", **kwargs)


# --- models ---------------------------------------------------------------------------------------
def build_bert() -> None:
    from transformers import BertConfig, BertForMaskedLM

    tok = bert_tokenizer()
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), max_position_embeddings=64, **TINY))
    save_both("bert", model, tok)


def build_bert_flax() -> None:
    """The same tiny BERT as Flax weights (``flax_model.msgpack``), as ``save_pretrained`` writes them."""
    from transformers import BertConfig, FlaxBertForMaskedLM

    tok = bert_tokenizer()
    model = FlaxBertForMaskedLM(BertConfig(vocab_size=len(tok), max_position_embeddings=64, **TINY), seed=0)
    out = fresh("bert-flax")
    model.save_pretrained(out)
    tok.save_pretrained(out)


def build_roberta() -> None:
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    vocab, merges = bpe_files("roberta-bpe")
    tok = RobertaTokenizerFast(vocab_file=str(vocab), merges_file=str(merges), model_max_length=64)
    config = RobertaConfig(
        vocab_size=len(tok),
        max_position_embeddings=66,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **TINY,
    )
    save_both("roberta", RobertaForSequenceClassification(config), tok)


def build_gpt2() -> None:
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    vocab, merges = bpe_files("gpt2-bpe")
    tok = GPT2TokenizerFast(
        vocab_file=str(vocab),
        merges_file=str(merges),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        model_max_length=64,
    )
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(
        vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=2, n_head=2, bos_token_id=eos, eos_token_id=eos
    )
    model = GPT2LMHeadModel(config)
    model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=eos, max_new_tokens=20)
    save_both("gpt2", model, tok)


def build_t5() -> None:
    from transformers import T5Config, T5ForConditionalGeneration, T5TokenizerFast

    spm = sp_model("t5-spm", model_type="unigram", vocab_size=100, pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    spiece = spm.with_name("spiece.model")
    shutil.copyfile(spm, spiece)
    tok = T5TokenizerFast(vocab_file=str(spiece), extra_ids=8, model_max_length=64)
    config = T5Config(
        vocab_size=len(tok),
        d_model=16,
        d_ff=32,
        d_kv=8,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    save_both("t5", T5ForConditionalGeneration(config), tok)


def build_xlm_roberta() -> None:
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaTokenizerFast

    spm = sp_model("xlmr-spm", model_type="bpe", vocab_size=120, normalization_rule_name="identity")
    bpe = spm.with_name("sentencepiece.bpe.model")
    shutil.copyfile(spm, bpe)
    tok = XLMRobertaTokenizerFast(vocab_file=str(bpe), model_max_length=64)
    config = XLMRobertaConfig(vocab_size=len(tok), max_position_embeddings=66, pad_token_id=tok.pad_token_id, **TINY)
    save_both("xlm-roberta", XLMRobertaForMaskedLM(config), tok)


def llama_parts(template: str | dict):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, LlamaTokenizerFast

    spm = sp_model(
        "llama-spm",
        model_type="bpe",
        vocab_size=400,
        byte_fallback=True,
        pad_id=-1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        normalization_rule_name="identity",
    )
    model_file = spm.with_name("tokenizer.model")
    shutil.copyfile(spm, model_file)
    tok = LlamaTokenizerFast(vocab_file=str(model_file), legacy=False, add_bos_token=True, model_max_length=64)
    tok.chat_template = template
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=1, eos_token_id=2, do_sample=True, temperature=0.6, top_p=0.9, max_length=64
    )
    return model, tok


def build_llama() -> None:
    # Two layouts seen on the Hub: the chat template inside tokenizer_config.json (older saves), and
    # transformers >= 4.50's separate chat_template.jinja (plus named templates in additional_chat_templates/).
    model, tok = llama_parts(LLAMA2_CHAT)
    for folder, safe in (("llama-chat-in-config", True), ("llama-chat-in-config-bin", False)):
        out = fresh(folder)
        model.save_pretrained(out, safe_serialization=safe)
        tok.save_pretrained(out, save_jinja_files=False)
    model, tok = llama_parts({"default": LLAMA3_TOOLS, "tool_use": CHATML_TOOLS})
    save_both("llama-chat-jinja", model, tok)


def build_sharded() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    vocab, merges = bpe_files("sharded-bpe")
    tok = GPT2TokenizerFast(vocab_file=str(vocab), merges_file=str(merges), model_max_length=64)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=4, n_head=2))
    for folder, safe in (("gpt2-sharded", True), ("gpt2-sharded-bin", False)):
        out = fresh(folder)
        model.save_pretrained(out, safe_serialization=safe, max_shard_size="40KB")
        tok.save_pretrained(out)


def clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """CLIP's BPE files: bytes_to_unicode symbols, their ``</w>`` forms, a few merges, the two specials."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    merges = ["t h", "th e</w>", "a n", "an d</w>", "o f</w>", "i n", "t o</w>", "m o", "mo d", "mod e", "mode l</w>"]
    for merge in merges:
        vocab.append(merge.replace(" ", ""))
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}), encoding="utf-8")
    merges_file = folder / "merges.txt"
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_file, merges_file


def clip_tokenizer():
    from transformers import CLIPTokenizerFast

    vocab, merges = clip_tokenizer_files(scratch("clip-bpe"))
    return CLIPTokenizerFast(vocab_file=str(vocab), merges_file=str(merges), model_max_length=16)


def build_clip() -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok = clip_tokenizer()
    text = dict(
        vocab_size=len(tok), max_position_embeddings=16, bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1, **TINY
    )
    vision = dict(image_size=32, patch_size=8, **TINY)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    save_both("clip", model, CLIPProcessor(image_processor=images, tokenizer=tok))


def build_whisper() -> None:
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    folder = scratch("whisper-bpe")
    vocab, merges = train_bytelevel_bpe(folder, vocab_size=300)
    normalizer = folder / "normalizer.json"
    normalizer.write_text(
        json.dumps({"accessorise": "accessorize", "colour": "color", "mr": "mister"}), encoding="utf-8"
    )
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|en|>",
        "<|fr|>",
        "<|de|>",
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    specials += [f"<|{i * 0.02:.2f}|>" for i in range(8)]
    tok = WhisperTokenizerFast(
        vocab_file=str(vocab),
        merges_file=str(merges),
        normalizer_file=str(normalizer),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        model_max_length=64,
    )
    tok.add_special_tokens({"additional_special_tokens": specials})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = WhisperConfig(
        vocab_size=len(tok),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,
        max_target_positions=64,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=[ids["<|endoftext|>"]],
    )
    model = WhisperForConditionalGeneration(config)
    gen = model.generation_config
    gen.lang_to_id = {t: ids[t] for t in ("<|en|>", "<|fr|>", "<|de|>")}
    gen.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    gen.no_timestamps_token_id = ids["<|notimestamps|>"]
    gen.is_multilingual = True
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok)
    save_both("whisper", model, processor)


def build_vit() -> None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    labels = ["cat", "dog", "bird"]
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **TINY,
    )
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    save_both("vit", ViTForImageClassification(config), processor)


# --- PEFT adapter over a base held in a Hugging Face hub cache --------------------------------------
BASE_REPO = "benign-org/tiny-llama"
BASE_COMMIT = "0b3c5e8f1a2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def write_hub_snapshot(cache: Path, repo: str, commit: str, files: Path) -> Path:
    """Lay ``files`` out as huggingface_hub's cache does: blobs/, refs/main, snapshots/<commit>/ symlinks."""
    root = cache / ("models--" + repo.replace("/", "--"))
    blobs, snapshot = root / "blobs", root / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit, encoding="utf-8")
    for path in sorted(files.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        lfs = path.suffix in {".safetensors", ".bin", ".model"}
        blob = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
        (blobs / blob).write_bytes(data)
        link = snapshot / path.relative_to(files)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blobs / blob, link.parent))
    return snapshot


def build_peft() -> None:
    from peft import LoraConfig, get_peft_model

    model, tok = llama_parts(LLAMA2_CHAT)
    base_files = scratch("peft-base")
    model.save_pretrained(base_files)
    tok.save_pretrained(base_files)
    out = fresh("peft-lora-hf-cache")
    write_hub_snapshot(out / "hub", BASE_REPO, BASE_COMMIT, base_files)
    model.config._name_or_path = BASE_REPO
    model.name_or_path = BASE_REPO
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")
    (out / "README.md").write_text(
        "Scan this folder with HF_HUB_CACHE pointing at its hub/ folder: the adapter's base model\n"
        f"{BASE_REPO} is resolved from that cache (offline), as on a machine that downloaded it.\n",
        encoding="utf-8",
    )


BUILDERS = [
    build_bert,
    build_bert_flax,
    build_roberta,
    build_gpt2,
    build_t5,
    build_xlm_roberta,
    build_llama,
    build_sharded,
    build_clip,
    build_whisper,
    build_vit,
    build_peft,
]


def main(only: list[str]) -> None:
    for build in BUILDERS:
        if only and build.__name__[len("build_") :] not in only:
            continue
        seed_everything(0)
        build()
        print(f"built {build.__name__[len('build_') :]}")


if __name__ == "__main__":
    main(sys.argv[1:])
