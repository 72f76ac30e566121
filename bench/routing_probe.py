"""What the pickle routing probe costs on files that are not pickles (issue 13, loader parity).

    python3 bench/routing_probe.py

Builds, in a temporary directory, a torch-style stored zip with 256 storages of 1 MiB of random
float32 (raw tensor bytes start with a pickle opcode about half the time, so most members are
probed) and a directory of 2,000 small text and binary files, then scans each in process with the
probe on and with it switched off (the sniffer alone decides), best of 3. Prints one table row each.
"""

from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from mlgate.analyzers.core import walker
from mlgate.analyzers.core.walker import ScanOptions, scan_path


def build(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    torch_zip = root / "storages.pt"
    with zipfile.ZipFile(torch_zip, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", b"3\n")
        for i in range(256):
            z.writestr(f"archive/data/{i}", rng.standard_normal(1 << 18).astype("<f4").tobytes())
    small = root / "small"
    small.mkdir()
    words = ["cat", "dog", "Lorem", "ipsum", "Sequential", "relu", "(x)", "]", "N/A", "42"]
    for i in range(1000):
        text = "\n".join(rng.choice(words, 40)) + "\n"
        (small / f"notes_{i}.txt").write_text(text)
        (small / f"blob_{i}.raw").write_bytes(rng.bytes(4096))
    return {"torch zip, 256 x 1 MiB random storages": torch_zip, "2,000 small text/raw files": small}


def measure(path: Path) -> tuple[float, int]:
    best = float("inf")
    result = scan_path(path, ScanOptions(compute_digest=False))  # warm-up: imports, page cache
    for _ in range(3):
        start = time.perf_counter()
        result = scan_path(path, ScanOptions(compute_digest=False))
        best = min(best, time.perf_counter() - start)
    return best, result.bytes_read


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        targets = build(Path(tmp))
        probe_for = walker.probe_for
        print("| target | probe | best wall time | bytes read |")
        print("|---|---|---:|---:|")
        for label, path in targets.items():
            for state in ("off", "on"):
                walker.probe_for = (lambda kind: None) if state == "off" else probe_for
                seconds, read = measure(path)
                print(f"| {label} | {state} | {seconds:.3f} s | {read / 2**20:.1f} MiB |")
        walker.probe_for = probe_for
    sys.stdout.flush()


if __name__ == "__main__":
    main()
