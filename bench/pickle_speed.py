"""Pickle-family speed and memory: a 4 GB torch checkpoint and opcode-dense 50 MB pickles.

Usage::

    python3 bench/pickle_speed.py [--workdir DIR] [--dense-mb 50] [--skip-genops]
    python3 bench/pickle_speed.py --skip-checkpoint [--dense-mb 20] [--reps 3] [--baseline-python PY]

1. Builds a torch zip checkpoint of 1,000 tensors whose storages are 4 MiB stored members
   (about 4.2 GB) as a sparse file: ``data.pkl`` and the other records come from a real
   ``torch.save`` of 1,000 tensors, the storage members are zeros written as holes, so the
   disk cost is a few MB. It is scanned in a fresh subprocess with
   ``ScanOptions(compute_digest=False)`` (scan time and peak RSS), and again with the digest on
   (the sha256 time is reported separately).
2. Writes opcode-dense pickles of several shapes at 5 MB and ``--dense-mb`` MB, and compares
   iterating ``pickletools.genops`` over each with a full mlgate scan; each scan runs in its
   own subprocess so peak RSS is per scan.

torch is used only to build the checkpoint; the scanning subprocesses import mlgate alone and
the script checks that they never import torch.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import pickletools
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

TENSORS = 1000
STORAGE_BYTES = 4 * 1024 * 1024

_SCAN = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from mlgate.analyzers.core.registry import load_all
from mlgate.analyzers.core.walker import ScanOptions, scan_path
load_all()
t1 = time.perf_counter()
c1 = time.process_time()
scan = scan_path(sys.argv[1], ScanOptions(compute_digest=sys.argv[2] == "digest"))
t2 = time.perf_counter()
c2 = time.process_time()
try:  # VmHWM is this address space's peak; ru_maxrss would include the forking parent's
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({
    "import_s": t1 - t0, "scan_s": t2 - t1, "scan_cpu_s": c2 - c1, "peak_rss_mb": peak,
    "findings": sorted({f.rule for f in scan.findings}), "complete": scan.complete, "bytes_read": scan.bytes_read,
    "torch_imported": "torch" in sys.modules, "tensorflow_imported": "tensorflow" in sys.modules,
}))
"""

# The pickle VM alone over a file (default Events, no analyzer): CPU seconds.
_VM = r"""
import io, json, sys, time
from mlgate.analyzers.pickles.vm import Events, PickleVM
data = open(sys.argv[1], "rb").read()
c = time.process_time()
result = PickleVM(io.BytesIO(data), Events(), size=len(data)).run_stream()
print(json.dumps({"vm_cpu_s": time.process_time() - c, "stopped": result.stopped}))
"""


class _SparseZeros(io.RawIOBase):
    """A file writer that turns blocks of zeros into holes (seek instead of write)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._f = open(path, "wb")
        self._end = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        n = len(data)
        if n >= 4096 and not any(data):
            self._f.seek(n, os.SEEK_CUR)
        else:
            self._f.write(data)
        self._end = max(self._end, self._f.tell())
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._f.truncate(max(self._end, self._f.tell()))
            self._f.close()


def build_checkpoint(path: Path) -> int:
    """A real torch.save layout with 1,000 storages of 4 MiB each, written sparse; returns its size."""
    import torch

    small = io.BytesIO()
    torch.save({f"layer{i}.weight": torch.zeros(1) for i in range(TENSORS)}, small)
    source = zipfile.ZipFile(io.BytesIO(small.getvalue()))
    zeros = bytes(1 << 20)
    with _SparseZeros(path) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True) as out:
        for info in source.infolist():
            name = info.filename
            if "/data/" in name and name.rsplit("/", 1)[1].isdigit():
                with out.open(zipfile.ZipInfo(name), "w", force_zip64=True) as member:
                    for _ in range(STORAGE_BYTES // len(zeros)):
                        member.write(zeros)
            else:
                out.writestr(name, source.read(name))
    return path.stat().st_size


def scan_subprocess(path: Path, digest: bool = False, python: str | None = None) -> dict[str, object]:
    run = subprocess.run(
        [python or sys.executable, "-c", _SCAN, str(path), "digest" if digest else "nodigest"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def vm_subprocess(path: Path, python: str | None = None) -> float:
    """CPU seconds of the pickle VM alone over ``path`` (a fresh process, imports not counted)."""
    run = subprocess.run([python or sys.executable, "-c", _VM, str(path)], capture_output=True, text=True, check=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["stopped"], result
    return float(result["vm_cpu_s"])


def dense_objects(shape: str, target_bytes: int) -> object:
    """Opcode-dense Python data of about ``target_bytes`` when pickled (protocol 4)."""
    rng = random.Random(7)
    if shape == "float rows":  # an embedding table kept as Python lists
        row = 128
        n = target_bytes // (9 * row + 4)
        return [[rng.random() for _ in range(row)] for _ in range(n)]
    if shape == "int rows":  # token ids
        row = 256
        n = target_bytes // (5 * row + 4)
        return [[rng.randrange(70000, 2**31) for _ in range(row)] for _ in range(n)]
    if shape == "vocab":  # a tokenizer vocabulary {token: id}
        n = target_bytes // 17
        return {f"tok{i:07d}": i + 70000 for i in range(n)}
    if shape == "strings":  # a list of short strings (labels, a vocabulary as a list)
        return [f"w{i}-{rng.randrange(10**6)}" for i in range(target_bytes // 14)]
    if shape == "records":  # a list of small dicts
        n = target_bytes // 44
        return [
            {"id": i, "score": rng.random(), "tag": f"t{i % 50}", "pos": (i, i + 1), "ok": bool(i & 1)}
            for i in range(n)
        ]
    raise ValueError(shape)


def genops_seconds(path: Path) -> tuple[float, int]:
    """CPU seconds of iterating ``pickletools.genops`` over ``path``, and the opcode count."""
    start = time.process_time()
    count = 0
    with open(path, "rb") as f:
        for _ in pickletools.genops(f):
            count += 1
    return time.process_time() - start, count


def loads_seconds(path: Path) -> float:
    """CPU seconds of CPython's C unpickler building the same objects (the data is this script's
    own, made of builtins only, so loading it runs nothing): the cost of materialising every value."""
    data = path.read_bytes()
    start = time.process_time()
    pickle.loads(data)
    return time.process_time() - start


SHAPES = [
    ("float rows", 4),
    ("int rows", 4),
    ("vocab", 4),
    ("vocab", 2),
    ("strings", 4),
    ("records", 4),
]
"""Opcode-dense shapes and the pickle protocol each is written with (2: BINUNICODE + LONG_BINPUT,
4: SHORT_BINUNICODE + MEMOIZE inside 64 KiB FRAMEs)."""


def dense_table(args: argparse.Namespace) -> None:
    """Median CPU seconds of genops, the VM alone and the whole scan on each dense shape, with the
    baseline interpreter's runs alternating with this one's when ``--baseline-python`` is given."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlgate-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    before = args.baseline_python
    print(f"## opcode-dense pickles ({args.dense_mb} MB), median CPU seconds of {args.reps} alternating runs")
    head = "| shape | protocol | size MB | opcodes | genops | pickle.loads (C) | VM alone | scan | genops/VM"
    head += " | genops/scan |"
    if before:
        head += " VM before | scan before | VM speed-up |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for shape, protocol in SHAPES:
        path = workdir / f"dense_{shape.replace(' ', '_')}_p{protocol}_{args.dense_mb}mb.pkl"
        path.write_bytes(pickle.dumps(dense_objects(shape, args.dense_mb * 1_000_000), protocol=protocol))
        vm, scan, vm0, scan0 = [], [], [], []
        for _ in range(args.reps):
            if before:
                vm0.append(vm_subprocess(path, before))
                scan0.append(float(scan_subprocess(path, python=before)["scan_cpu_s"]))  # type: ignore[arg-type]
            vm.append(vm_subprocess(path))
            result = scan_subprocess(path)
            assert result["findings"] == [] and result["complete"], result
            scan.append(float(result["scan_cpu_s"]))  # type: ignore[arg-type]
        gen_s, ops = (float("nan"), 0) if args.skip_genops else genops_seconds(path)
        v, sc = statistics.median(vm), statistics.median(scan)
        line = (
            f"| {shape} | {protocol} | {path.stat().st_size / 1e6:.1f} | {ops} | {gen_s:.2f} | "
            f"{loads_seconds(path):.2f} | {v:.2f} | {sc:.2f} | "
            f"{gen_s / v:.1f}x | {gen_s / sc:.1f}x |"
        )
        if before:
            v0, sc0 = statistics.median(vm0), statistics.median(scan0)
            line += f" {v0:.2f} | {sc0:.2f} | {v0 / v:.2f}x |"
        print(line, flush=True)
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="where to write the inputs (default: a temporary dir)")
    parser.add_argument("--dense-mb", type=int, default=50)
    parser.add_argument("--skip-genops", action="store_true", help="skip the pickletools.genops baseline")
    parser.add_argument("--skip-checkpoint", action="store_true", help="only the opcode-dense pickles")
    parser.add_argument("--reps", type=int, default=1, help="runs per dense scan (median; CPU time)")
    parser.add_argument(
        "--baseline-python",
        help="an interpreter with another mlgate checkout (e.g. main's venv): its scans and VM run "
        "alternate with this one's on the same files, as the 'before' columns",
    )
    args = parser.parse_args()
    if args.skip_checkpoint:
        dense_table(args)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlgate-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    ckpt = workdir / "checkpoint_4gb.pt"
    size = build_checkpoint(ckpt)
    disk = ckpt.stat().st_blocks * 512
    scans = [scan_subprocess(ckpt) for _ in range(3)]
    best = min(scans, key=lambda s: s["scan_s"])
    with_digest = scan_subprocess(ckpt, digest=True)
    print(f"## torch checkpoint: {TENSORS} tensors, {size / 1e9:.2f} GB ({disk / 1e6:.1f} MB on disk)")
    print(
        f"scan (no digest): best {best['scan_s'] * 1000:.1f} ms of {[round(s['scan_s'] * 1000, 1) for s in scans]},"
        f" peak RSS {best['peak_rss_mb']:.1f} MB, imports {best['import_s'] * 1000:.0f} ms, "
        f"bytes read {best['bytes_read']}, findings {best['findings']}, complete {best['complete']}, "
        f"torch imported {best['torch_imported']}"
    )
    print(
        f"scan with sha256 digest: {with_digest['scan_s']:.2f} s "
        f"(digest {with_digest['scan_s'] - best['scan_s']:.2f} s), peak RSS {with_digest['peak_rss_mb']:.1f} MB"
    )

    print(f"\n## opcode-dense pickles ({args.dense_mb} MB and 5 MB)")
    print("| shape | size MB | opcodes | genops s | mlgate scan s | speed-up | peak RSS MB (5 MB -> big) |")
    print("|---|---|---|---|---|---|---|")
    for shape in ("float rows", "int rows", "vocab", "records"):
        rss = []
        for mb in (5, args.dense_mb):
            path = workdir / f"dense_{shape.replace(' ', '_')}_{mb}mb.pkl"
            path.write_bytes(pickle.dumps(dense_objects(shape, mb * 1_000_000), protocol=4))
            result = scan_subprocess(path)
            rss.append(result["peak_rss_mb"])
            assert result["findings"] == [] and result["complete"], result
        gen_s, ops = (float("nan"), 0) if args.skip_genops else genops_seconds(path)
        print(
            f"| {shape} | {path.stat().st_size / 1e6:.1f} | {ops} | {gen_s:.2f} | {result['scan_s']:.2f} | "
            f"{gen_s / result['scan_s']:.1f}x | {rss[0]:.0f} -> {rss[1]:.0f} |"
        )
    if args.workdir is None:
        for p in workdir.iterdir():
            p.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()
