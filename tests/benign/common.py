"""Shared helpers for the benign-suite builders: output folders, seeds, tiny tokenizer files.

The builders lay out every model exactly as its library saves it, from tiny random-weight
configurations, without any download. Tokenizers are built from small vocabulary files written
here (WordPiece ``vocab.txt``, byte-level BPE ``vocab.json`` + ``merges.txt``) or trained with
sentencepiece on a tiny corpus, so the files have the real formats with a vocabulary of ~100-500.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Builders never download: every hub client in this process stays offline.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent / "fixtures" / "benign"
# Scratch space for intermediate files. Libraries record some paths (Lightning's checkpoint folder,
# MLflow's model_code_path): they name this neutral temporary folder, never the checkout.
WORK = Path(tempfile.gettempdir()) / "mlgate-benign-build"

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a model registry keeps every version of a model",
    "tokenizers split text into pieces and ids",
    "hello world this is a tiny corpus for a tiny tokenizer",
    "models are saved as safetensors or as pickles",
    "the gate scans each model before anyone loads it",
    "numbers like 1 2 3 4 5 6 7 8 9 0 appear too",
    "what is the weather like today in paris and london",
    "she sells sea shells by the sea shore",
    "machine learning models learn weights from data",
] * 3

WORDS = sorted({w for line in CORPUS for w in line.split()})


def seed_everything(seed: int = 0) -> None:
    """Fix every random source the builders use."""
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
    except ImportError:
        pass


def fresh(name: str) -> Path:
    """An empty output folder ``tests/fixtures/benign/<name>``."""
    out = ROOT / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def scratch(name: str) -> Path:
    """An empty scratch folder for intermediate files."""
    out = WORK / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[Path]:
    """Run a library with ``folder`` as working directory, so the paths it records are relative."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


_LOCAL_PATHS = [(str(Path(sys.prefix)), "/opt/venv"), (str(HERE.parent.parent), "/src/project")]


def scrub_local_paths(text: str) -> str:
    """Replace this machine's interpreter and checkout prefixes in text a library recorded (stack traces)."""
    for local, neutral in _LOCAL_PATHS:
        text = text.replace(local, neutral)
    return re.sub(r"/(?:work|root|home/[^/]+)/\S*?/site-packages/", "/opt/venv/lib/site-packages/", text)


def write_wordpiece_vocab(path: Path) -> Path:
    """A BERT-style ``vocab.txt``: special tokens, letters, ``##`` suffixes and the corpus words."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    tokens += letters + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    tokens += [w for w in WORDS if w not in tokens]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def train_bytelevel_bpe(folder: Path, vocab_size: int = 300) -> tuple[Path, Path]:
    """GPT-2/RoBERTa-style ``vocab.json`` + ``merges.txt`` trained on the tiny corpus."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        CORPUS,
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<|endoftext|>"],
        show_progress=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_model(str(folder))
    return folder / "vocab.json", folder / "merges.txt"


def train_sentencepiece(
    prefix: Path,
    model_type: str = "unigram",
    vocab_size: int = 100,
    byte_fallback: bool = False,
    user_symbols: tuple[str, ...] = (),
    **extra: object,
) -> Path:
    """Train a tiny sentencepiece model on the corpus; returns ``<prefix>.model``."""
    import sentencepiece as spm

    prefix.parent.mkdir(parents=True, exist_ok=True)
    corpus = prefix.parent / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    with inside(prefix.parent):  # the model records its trainer spec, input and prefix paths included
        spm.SentencePieceTrainer.train(
            input="corpus.txt",
            model_prefix=prefix.name,
            model_type=model_type,
            vocab_size=vocab_size,
            byte_fallback=byte_fallback,
            character_coverage=1.0,
            user_defined_symbols=list(user_symbols),
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
            **extra,
        )
    return prefix.with_suffix(".model")
