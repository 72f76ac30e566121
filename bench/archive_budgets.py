"""Archive bombs under the DEFAULT budgets: wall time and peak RSS of one scan per file.

Builds, in a temporary directory:
  nested-50.zip        50 levels of zip in zip (deflated)
  expand-1g.zip        one deflated member that expands to 1 GiB of zeros
  members-100k.zip     100,000 empty members
  liar-1g.tar.gz       a tar holding 1 GiB of zeros then a file, gzip trailer patched to claim 4 bytes
                       (no header gives the bomb away: the ratio check must fire while streaming)
  control-1g.pt        not a bomb: a torch-style stored zip, data.pkl + 1,024 storages of 1 MiB each,
                       to show a legitimate large archive costs its metadata, not its size

then scans each in a fresh subprocess with ``scan_target(path, Policy())`` and reports
the verdict, whether the scan completed, which budget stopped it, wall time and the
child's peak RSS (``VmHWM`` from ``/proc/self/status``, falling back to
``resource.getrusage``, which Linux carries over from the parent across fork+exec);
the interpreter with mlgate and every analyzer imported is shown as a baseline.

Run from the repository root:  python3 bench/archive_budgets.py
"""

from __future__ import annotations

import io
import json
import resource
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

GiB = 1 << 30
_CHUNK = b"\0" * (1 << 20)


def nested(path: Path, levels: int = 50) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("leaf.txt", b"payload")
    for _ in range(levels - 1):
        data, buf = buf.getvalue(), io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("inner.zip", data)
    path.write_bytes(buf.getvalue())


def expanding(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("config.json", b"{}")
        with z.open("weights.bin", "w", force_zip64=True) as member:
            for _ in range(GiB // len(_CHUNK)):
                member.write(_CHUNK)


def many(path: Path, count: int = 100_000) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(count):
            z.writestr(f"m/{i:06d}.txt", b"")


def lying_tar_gz(path: Path) -> None:
    """tar(1 GiB zeros, then a small file) -> gzip, with the ISIZE trailer rewritten to 4."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(path, "wb") as out:

        def emit(data: bytes) -> None:
            out.write(compressor.compress(data))

        header = tarfile.TarInfo("zeros.bin")
        header.size = GiB
        emit(header.tobuf(format=tarfile.GNU_FORMAT))
        for _ in range(GiB // len(_CHUNK)):
            emit(_CHUNK)
        tail = tarfile.TarInfo("model_config.yaml")
        tail.size = 5
        emit(tail.tobuf(format=tarfile.GNU_FORMAT) + b"a: 1\n".ljust(512, b"\0") + b"\0" * 1024)
        out.write(compressor.flush())
    with open(path, "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(struct.pack("<I", 4))


def control(path: Path, storages: int = 1024) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", b"3\n")
        for i in range(storages):
            with z.open(f"archive/data/{i}", "w") as member:
                member.write(_CHUNK)


def peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scan_child(path: str) -> None:
    """Runs in the subprocess: scan with the default policy, print one JSON line."""
    from mlgate.analyzers.core.policy import Policy
    from mlgate.analyzers.core.registry import load_all
    from mlgate.controller.scanning import scan_target

    load_all()
    baseline = peak_rss_mib()
    started = time.perf_counter()
    report = scan_target(path, Policy())
    wall = time.perf_counter() - started
    budgets = sorted(
        {f.message.rsplit("(budget ", 1)[-1].rstrip(")") for f in report.findings if f.rule == "MLG-CORE-002"}
    )
    print(
        json.dumps(
            {
                "verdict": report.verdict.value,
                "complete": report.scan_complete,
                "budgets": budgets,
                "wall_s": round(wall, 3),
                "bytes_read": report.bytes_read,
                "baseline_rss_mib": round(baseline, 1),
                "peak_rss_mib": round(peak_rss_mib(), 1),
            }
        )
    )


def main() -> None:
    builders = [
        ("nested-50.zip", nested),
        ("expand-1g.zip", expanding),
        ("members-100k.zip", many),
        ("liar-1g.tar.gz", lying_tar_gz),
        ("control-1g.pt", control),
    ]
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as tmp:
        print(f"{'file':<18} {'size':>10} {'build s':>8} {'verdict':<12} {'complete':<8} {'budget':<18} "
              f"{'scan s':>7} {'read MiB':>9} {'RSS base':>9} {'RSS peak':>9}")  # fmt: skip
        for name, build in builders:
            path = Path(tmp) / name
            started = time.perf_counter()
            build(path)
            built = time.perf_counter() - started
            child = subprocess.run(
                [sys.executable, __file__, "--scan", str(path)], capture_output=True, text=True, check=True, timeout=900
            )
            r = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"{name:<18} {path.stat().st_size:>10} {built:>8.1f} {r['verdict']:<12} {str(r['complete']):<8} "
                f"{','.join(r['budgets']) or '-':<18} {r['wall_s']:>7.3f} {r['bytes_read'] / (1 << 20):>9.1f} "
                f"{r['baseline_rss_mib']:>9.1f} {r['peak_rss_mib']:>9.1f}"
            )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--scan":
        scan_child(sys.argv[2])
    else:
        main()
