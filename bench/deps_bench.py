"""Dependency-area figures: Python source analysis, config parsing, GGUF metadata, resolution overhead.

    python3 bench/deps_bench.py

Everything is synthetic and built here (no network): a 6,000-line modelling file, a
tokenizer.json with a 150,000-token vocabulary and merges, GGUF files whose one tensor
grows from 64 MiB to 4 GiB (sparse files: the tensor bytes are never read), and a PEFT
adapter whose base model sits in a Hugging Face cache built in a temp folder. Best of 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlgate.analyzers.core.policy import Policy
from mlgate.analyzers.core.walker import scan_path
from mlgate.analyzers.embedded_code.python_source import analyze_source
from mlgate.controller.scanning import scan_target


def best(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def python_source() -> None:
    block = """
class Block{i}(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.proj = nn.Linear(config.hidden, config.hidden)
        self.norm = nn.LayerNorm(config.hidden)
        self._init_weights(self.proj)

    def _init_weights(self, module):
        nn.init.normal_(module.weight, std=0.02)

    def forward(self, x, mask=None):
        h = self.norm(x)
        h = torch.softmax(self.proj(h) / math.sqrt(h.shape[-1]), dim=-1)
        if mask is not None:
            h = h.masked_fill(mask, 0.0)
        return x + h
"""
    source = "import math\nimport torch\nfrom torch import nn\n" + "".join(block.format(i=i) for i in range(375))
    data = source.encode()
    lines = source.count("\n")
    seconds = best(lambda: analyze_source(data, "modeling_big.py"))
    print(f"python source: {lines} lines, {len(data):,} bytes: {seconds:.3f} s ({lines / seconds:,.0f} lines/s)")


def tokenizer_json(tmp: Path) -> None:
    vocab = {f"tok{i}": i for i in range(150_000)}
    merges = [[f"a{i}", f"b{i}"] for i in range(150_000)]
    path = tmp / "tok" / "tokenizer.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": merges}}))
    seconds = best(lambda: scan_path(path.parent))
    print(f"tokenizer.json: {path.stat().st_size:,} bytes: {seconds:.3f} s")


def _s(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(tmp: Path, tensor_bytes: int) -> Path:
    tokens = [f"tok{i}" for i in range(150_000)]
    kv = [
        _s("general.architecture") + struct.pack("<I", 8) + _s("llama"),
        _s("tokenizer.chat_template")
        + struct.pack("<I", 8)
        + _s("{% for m in messages %}{{ m['content'] }}{% endfor %}"),
        _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, len(tokens)) + b"".join(_s(t) for t in tokens),
        _s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, len(tokens)) + b"\x00" * (4 * len(tokens)),
    ]
    elements = tensor_bytes // 4
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv)) + b"".join(kv)
    header += _s("w") + struct.pack("<IQIQ", 1, elements, 0, 0)
    header += b"\x00" * (-len(header) % 32)
    path = tmp / f"m{tensor_bytes >> 20}.gguf"
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + tensor_bytes)  # sparse: the tensor data costs no disk and is never read
    return path


def gguf_files(tmp: Path) -> None:
    from mlgate.analyzers.core.walker import ScanOptions

    options = ScanOptions(compute_digest=False)
    for size in (64 << 20, 1 << 30, 4 << 30):
        path = gguf(tmp, size)
        seconds = best(lambda p=path: scan_path(p, options))
        scan = scan_path(path, options)
        print(
            f"gguf: tensor {size >> 20:,} MiB, file {path.stat().st_size:,} bytes: {seconds:.3f} s, "
            f"bytes read {scan.bytes_read:,}, findings {[f.rule for f in scan.findings]}"
        )
        path.unlink()


def resolution(tmp: Path) -> None:
    cache = tmp / "cache"
    commit = "0" * 40
    repo = cache / "models--acme--base"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    config = json.dumps({"model_type": "bert", "hidden_size": 8}).encode()
    blob = repo / "blobs" / hashlib.sha256(config).hexdigest()
    blob.write_bytes(config)
    (repo / "snapshots" / commit / "config.json").symlink_to(os.path.relpath(blob, repo / "snapshots" / commit))
    adapter = tmp / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "acme/base", "revision": commit})
    )
    os.environ["HF_HUB_CACHE"] = str(cache)
    scan_target(adapter, Policy())  # warm imports (huggingface_hub)
    with_deps = best(lambda: scan_target(adapter, Policy()))
    alone = best(lambda: scan_path(adapter))
    print(f"adapter + hub-cache base: {with_deps * 1000:.1f} ms (adapter alone {alone * 1000:.1f} ms)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        python_source()
        tokenizer_json(Path(tmp))
        gguf_files(Path(tmp))
        resolution(Path(tmp))


if __name__ == "__main__":
    main()
