"""Side by side: mlgate and the peer scanners on the same inputs, whole process, alternating runs.

Usage::

    python3 -m venv PEERS && PEERS/bin/pip install picklescan modelscan fickling modelaudit
    python3 bench/compare.py --peers PEERS [--mlgate-python PY] [--reps 3] [--big-mb 1024]
        [--safetensors-mb 1024] [--dir-files 1000] [--workdir DIR] [--only CASE,...] [--timeout 120]

The peers live in their own virtual environment (``--peers``, never an mlgate dependency); a peer
whose command is missing there is skipped. mlgate runs as ``PY -m mlgate.controller scan`` (default
options: no content digest; the ``mlgate --digest`` row adds it). ``PY`` defaults to this interpreter;
give the Python of a venv with a regular (non-editable) ``pip install .`` to measure what users run:
an editable install adds its import finder to every start. When mlgate is imported from this
checkout, its sources are byte-compiled first (what a wheel install does), so no run pays compiling.

Inputs, built in ``--workdir`` (a temporary folder by default) with real libraries:

- ``small-pickle``: ``pickle.dumps`` of a dict of lists and a numpy array (protocol 4).
- ``torch-40mb`` / ``torch-big``: torch zip checkpoints (``archive/data.pkl``, ``archive/data/<key>``,
  ``archive/version``, stored members) of 100 / 1,000 float32 tensors. ``data.pkl`` is written by
  ``torch.save`` when torch is importable, else by ``pickle`` in torch's layout
  (``torch._utils._rebuild_tensor_v2`` over persistent ``storage`` ids); the storages of the big one
  are zeros written as holes (a sparse file), so it costs little disk.
- ``torch-4gb``: as ``torch-big`` with ``--huge-mb`` (4,096 MiB) of sparse storages: the multi-GB
  checkpoint of issue 19, whose scan is compared with ``zip dir + data.pkl`` (a minimal script that
  reads only the zip directory and the pickle member) and whose peak memory is compared with the
  40 MB one (the summary lines after the table).
- ``safetensors-1gb``: ``safetensors.numpy.save_file`` of four float32 arrays.
- ``keras``, ``savedmodel``, ``onnx``: benign committed fixtures from ``tests/fixtures/keras_tf``.
- ``dir-1000``: a folder of ``--dir-files`` small models: pickles (a few with an ``os.system``
  payload that would only ``touch`` a canary), torch zips, safetensors, JSON configs and copies of
  the Keras/ONNX fixtures.
- ``fixtures``: a folder of the committed single-file fixtures (``FIXTURE_SETS``: malicious,
  suspicious and benign pickles, marshal payloads, Keras, ONNX, torch and safetensors files), the
  kind of mixed folder a registry hands over; mlgate also runs on it with one target per file and
  ``--jobs 2`` (the ``mlgate -j2 files`` row), and on the folder with ``--jobs 1`` (one process, the
  ``mlgate -j1`` row) and ``--jobs 2`` (its files split across 2 workers, the ``mlgate -j2`` row); the
  ``mlgate`` row uses the default, a worker per CPU the load average leaves free.

Detection: for the folder cases each tool's report is read back (mlgate and ModelAudit JSON,
modelscan's JSON report, picklescan's ``FOUND`` lines) and every file it flags (mlgate: a finding
of high or critical severity; modelscan: CRITICAL or HIGH; ModelAudit: critical; picklescan: a
dangerous import) is counted against the files known to be malicious (the payload pickles of
``dir-1000``; ``pickles/malicious`` and the ``evil_``/``inj_`` Keras models of ``fixtures``) and
known to be benign. ``det`` is malicious files flagged / known malicious, ``fp`` benign files flagged.

Each case runs every tool once per repetition, in turn (mlgate, peer 1, peer 2, ..., then again), so
load changes on a shared machine hit all tools alike; a tool whose run exceeds ``--slow`` seconds
(ModelAudit) runs once. Per tool it prints the median wall time, median CPU time (user + system of
the process and its children, from GNU ``/usr/bin/time``), median peak RSS, the exit status of the
last run (for mlgate 1 means quarantined), mlgate's paired ratios to it (the median over repetitions
of mlgate's run divided by this tool's run of the same repetition, wall and CPU; > 1: mlgate is
slower) and, for the folder cases, its detection count. The load average is printed before and
after. ``sha256sum`` of the file (``true`` for a folder) is the yardstick for the ``mlgate --digest``
row. Nothing here ever unpickles or loads a model in this process.
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import pickle
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
import zipfile
from collections.abc import Callable
from pathlib import Path

from pickle_speed import _SparseZeros  # bench/ is on sys.path when this script runs

REPO = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"  # GNU time: -f %U %S %M
FIXTURES = REPO / "tests" / "fixtures" / "keras_tf"
ALL_FIXTURES = REPO / "tests" / "fixtures"
# (folder under tests/fixtures, glob, label): label "malicious", "benign" or "" (no ground truth)
FIXTURE_SETS = (
    ("pickles/malicious", "*", "malicious"),
    ("pickles/benign", "*", "benign"),
    ("pickles/suspicious", "*", ""),
    ("pickles/marshal", "*", ""),
    ("keras_tf/keras", "evil_*", "malicious"),
    ("keras_tf/keras", "inj_*", "malicious"),
    ("keras_tf/keras", "benign_*", "benign"),
    ("keras_tf/keras", "parity_*", ""),
    ("keras_tf/keras", "tfk_*", ""),
    ("keras_tf/onnx", "benign*", "benign"),
    ("keras_tf/onnx", "[!b]*", ""),
    ("archives", "clean_*", "benign"),
    ("archives", "torch_*", ""),
    ("archives", "hydra_*", ""),
)


# --- inputs ----------------------------------------------------------------------------------------
class _Payload:
    """Pickles as a call to os.system that only touches a canary file (never run here)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"mkdir -p /tmp/mlgate-canary && touch /tmp/mlgate-canary/{self.name}",))


def small_pickle(path: Path, malicious: str | None = None) -> None:
    import numpy as np

    obj: dict[str, object] = {
        "weights": np.arange(256, dtype=np.float32).reshape(16, 16),
        "vocab": [f"tok{i}" for i in range(200)],
        "config": {"layers": 4, "hidden": 16, "act": "gelu"},
    }
    if malicious:
        obj["x"] = _Payload(malicious)
    path.write_bytes(pickle.dumps(obj, protocol=4))


def _fake_torch() -> tuple[Callable[..., object], type]:
    """Stand-ins registered as ``torch._utils._rebuild_tensor_v2`` and ``torch.FloatStorage`` so
    ``pickle`` writes the same GLOBAL opcodes torch.save writes (only in this builder process)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None:  # pragma: no cover - never called
        raise RuntimeError("builder stand-in")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    sys.modules.setdefault("torch", torch)
    sys.modules.setdefault("torch._utils", utils)
    return sys.modules["torch._utils"]._rebuild_tensor_v2, sys.modules["torch"].FloatStorage  # type: ignore[attr-defined]


def _torch_data_pkl(n: int, numel: int) -> bytes:
    """``data.pkl`` of an OrderedDict of ``n`` float32 tensors of ``numel`` elements, torch layout."""
    rebuild, storage = _fake_torch()
    from collections import OrderedDict

    class _Tensor:
        def __init__(self, key: int) -> None:
            self.key = key

        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return (rebuild, (_Storage(self.key), 0, (numel,), (1,), False, OrderedDict()))

    class _Storage:
        def __init__(self, key: int) -> None:
            self.key = key

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _Storage):
                return ("storage", storage, str(obj.key), "cpu", numel)
            return None

    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(OrderedDict((f"layer{i}.weight", _Tensor(i)) for i in range(n)))
    return buf.getvalue()


def torch_zip(path: Path, tensors: int, total_bytes: int, sparse: bool) -> None:
    """A torch zip checkpoint; ``sparse`` writes the storages as zeros in holes (little disk)."""
    numel = max(1, total_bytes // tensors // 4)
    data_pkl = _torch_data_pkl(tensors, numel)
    stem = path.stem
    raw = _SparseZeros(path) if sparse else open(path, "wb")
    with raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(f"{stem}/data.pkl", data_pkl)
        zf.writestr(f"{stem}/byteorder", "little")
        for i in range(tensors):
            with zf.open(zipfile.ZipInfo(f"{stem}/data/{i}"), "w", force_zip64=True) as member:
                left = numel * 4
                while left:
                    n = min(left, 1 << 20)
                    member.write(bytes(n) if sparse else os.urandom(n))
                    left -= n
        zf.writestr(f"{stem}/version", "3\n")


def safetensors_file(path: Path, total_bytes: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    per = total_bytes // 4 // 4
    save_file({f"w{i}": np.zeros(per, dtype=np.float32) for i in range(4)}, str(path), metadata={"format": "np"})


def mixed_dir(path: Path, count: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    fixtures = [FIXTURES / "keras" / "benign_k3.keras", FIXTURES / "onnx" / "benign.onnx"]
    small_zip = path / "_template.pt"
    torch_zip(small_zip, 4, 64 * 1024, sparse=False)
    for i in range(count):
        slot = i % 10
        name = path / f"m{i:04d}"
        if slot in (0, 1, 2):
            small_pickle(name.with_suffix(".pkl"), malicious=f"compare-{i}" if i % 100 == 0 else None)
        elif slot in (3, 4):
            shutil.copyfile(small_zip, name.with_suffix(".pt"))
        elif slot in (5, 6):
            save_file({"w": np.arange(64, dtype=np.float32)}, str(name.with_suffix(".safetensors")))
        elif slot == 7:
            name.with_suffix(".json").write_text(json.dumps({"model_type": "bert", "hidden_size": 16}))
        else:
            src = fixtures[slot - 8]
            shutil.copyfile(src, name.with_suffix(src.suffix))
    small_zip.unlink()


def fixtures_dir(path: Path) -> None:
    """Copies of the committed single-file fixtures, with their labels in ``labels.json`` beside it."""
    path.mkdir(parents=True, exist_ok=True)
    labels = {}
    for folder, pattern, label in FIXTURE_SETS:
        for src in sorted((ALL_FIXTURES / folder).glob(pattern)):
            if not src.is_file() or src.suffix in (".py", ".md", ".json"):
                continue
            name = f"{folder.replace('/', '_')}_{src.name}"
            shutil.copyfile(src, path / name)
            labels[name] = label
    path.with_suffix(".labels.json").write_text(json.dumps(labels, indent=1))


def labels_of(case: str, target: Path) -> dict[str, str]:
    """File name -> "malicious" / "benign" / "" for a folder case (empty for single files)."""
    if case == "fixtures":
        return json.loads(target.with_suffix(".labels.json").read_text())
    if case == "dir-1000":
        return {p.name: "malicious" if p.suffix == ".pkl" and int(p.stem[1:]) % 100 == 0 else "benign"
                for p in target.iterdir()}  # fmt: skip
    return {}


def build_inputs(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    cases: dict[str, tuple[Path, Callable[[Path], None]]] = {
        "small-pickle": (work / "small.pkl", small_pickle),
        "torch-40mb": (work / "torch40.pt", lambda p: torch_zip(p, 100, 40 << 20, sparse=False)),
        "torch-big": (work / "torch_big.pt", lambda p: torch_zip(p, 1000, args.big_mb << 20, sparse=True)),
        "torch-4gb": (work / "torch_4gb.pt", lambda p: torch_zip(p, 1000, args.huge_mb << 20, sparse=True)),
        "safetensors-1gb": (work / "big.safetensors", lambda p: safetensors_file(p, args.safetensors_mb << 20)),
        "keras": (FIXTURES / "keras" / "benign_k3.keras", lambda p: None),
        "savedmodel": (FIXTURES / "savedmodel" / "benign_module", lambda p: None),
        "onnx": (FIXTURES / "onnx" / "benign.onnx", lambda p: None),
        "dir-1000": (work / "mixed", lambda p: mixed_dir(p, args.dir_files)),
        "fixtures": (work / "fixtures", fixtures_dir),
    }
    out = {}
    for name, (path, build) in cases.items():
        if args.only and name not in args.only:
            continue
        if not path.exists():
            t0 = time.perf_counter()
            build(path)
            print(f"built {name}: {path.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        out[name] = path
    return out


# --- tools -----------------------------------------------------------------------------------------
_MIN_ZIP = """import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
"""


def summaries(rows: list[dict[str, object]]) -> list[str]:
    """Issue 19's checks from the table: the big checkpoint against the minimal zip script, its peak
    memory against the 40 MB one, and the digest's throughput against ``sha256sum`` on each file."""
    at = {(r["case"], r["tool"]): r for r in rows}
    out = []
    for case in ("torch-big", "torch-4gb"):
        mine, floor = at.get((case, "mlgate")), at.get((case, "zip dir + data.pkl"))
        if mine and floor:
            out.append(
                f"{case}: mlgate / minimal zip script = {mine['wall_s'] / floor['wall_s']:.2f}x wall, "
                f"{mine['cpu_s'] / max(floor['cpu_s'], 1e-3):.2f}x CPU"  # type: ignore[operator]
            )
        small = at.get(("torch-40mb", "mlgate"))
        if mine and small:
            out.append(f"{case}: mlgate peak {mine['peak_mib']:.1f} MiB vs torch-40mb {small['peak_mib']:.1f} MiB")
    for case in sorted({r["case"] for r in rows}):  # type: ignore[type-var]
        digest, plain, sha = (at.get((case, t)) for t in ("mlgate --digest", "mlgate", "sha256sum"))
        if digest and plain and sha and sha["wall_s"] > 0.05:  # type: ignore[operator]
            hashing = max(digest["wall_s"] - plain["wall_s"], 1e-3)  # type: ignore[operator]
            out.append(
                f"{case}: digest throughput vs sha256sum: whole process {sha['wall_s'] / digest['wall_s']:.2f}, "
                f"hashing alone (--digest minus no digest) {sha['wall_s'] / hashing:.2f} (>= 0.70 wanted)"
            )
    return out


def tools(peers: Path | None, python: str = sys.executable) -> dict[str, Callable[[Path], list[str]] | None]:
    mlgate = [python, "-m", "mlgate.controller", "scan", "--format", "json", "--no-progress"]
    out: dict[str, Callable[[Path], list[str]] | None] = {
        "mlgate": lambda p: [*mlgate, str(p)],
        "mlgate --digest": lambda p: [*mlgate, "--digest", str(p)],
        # a folder in this one process / split across 2 workers (folders only; the default depends on the load)
        "mlgate -j1": lambda p: [*mlgate, "--jobs", "1", str(p)] if p.is_dir() else [],
        "mlgate -j2": lambda p: [*mlgate, "--jobs", "2", str(p)] if p.is_dir() else [],
        # every file its own target, scanned by a pool of 2 workers (folders only)
        "mlgate -j2 files": lambda p: [*mlgate, "--jobs", "2", *map(str, sorted(p.iterdir()))] if p.is_dir() else [],
    }
    # the floor for a torch zip: Python, zipfile's directory and data.pkl (torch zips only)
    out["zip dir + data.pkl"] = lambda p: [sys.executable, "-c", _MIN_ZIP, str(p)] if p.suffix == ".pt" else []
    if shutil.which("sha256sum"):  # the digest's yardstick: compare with the "mlgate --digest" row
        out["sha256sum"] = lambda p: ["sha256sum", str(p)] if p.is_file() else ["true"]
    bindir = peers.absolute() / "bin" if peers else None

    def peer(exe: str, build: Callable[[str, Path], list[str]]) -> Callable[[Path], list[str]] | None:
        if bindir is None or not (bindir / exe).exists():
            return None
        return lambda p: build(str(bindir / exe), p)

    out["picklescan"] = peer("picklescan", lambda e, p: [e, "-p", str(p)])
    out["modelscan"] = peer("modelscan", lambda e, p: [e, "-p", str(p), "-r", "json", "-o", REPORT])
    out["fickling"] = peer("fickling", lambda e, p: [e, "--check-safety", str(p)])
    out["modelaudit"] = peer(
        "modelaudit", lambda e, p: [e, "scan", "--no-cache", "--format", "json", "-o", REPORT, str(p)]
    )
    return out


REPORT = "{report}"  # replaced by a temporary file per run: the tool's machine-readable report


def flagged(tool: str, stdout: str, report: str, target: Path) -> set[str] | None:
    """Names of the files under ``target`` the tool flags (see the module docstring), None if unknown."""
    where: list[str] = []
    try:
        if tool.startswith("mlgate"):
            for scanned in json.loads(stdout)["targets"]:
                bad = [f["location"] for f in scanned["findings"] if f["severity"] in ("high", "critical")]
                if Path(scanned["target"]) == target:
                    where += bad  # one target: locations inside it
                elif bad:
                    where.append(Path(scanned["target"]).name)  # one target per file
        elif tool == "picklescan":
            where = [
                line.split(": dangerous import", 1)[0] for line in stdout.splitlines() if "dangerous import" in line
            ]
        elif tool in ("modelscan", "modelaudit"):
            issues = json.loads(report or "{}").get("issues", [])
            wanted = ("CRITICAL", "HIGH") if tool == "modelscan" else ("critical",)
            where = [i.get("source") or i.get("location") or "" for i in issues if i.get("severity") in wanted]
        else:
            return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    names = sorted((p.name for p in target.iterdir()), key=len, reverse=True) if target.is_dir() else [target.name]
    out = set()
    for loc in where:
        loc = loc.removeprefix(str(target) + "/").removeprefix(str(target))
        for name in names:  # the longest file name the location starts with, up to a separator
            if loc == name or (loc.startswith(name) and loc[len(name)] in ":!@# /"):
                out.add(name)
                break
    return out


def run_once(cmd: list[str], timeout: float) -> dict[str, float | int | str]:
    """Wall, CPU (user+sys, children included) and peak RSS of one process, from ``/usr/bin/time`` (a
    small C parent, so the figures are the tool's own, not a copy of this Python process); its
    stdout and report file are kept in the result for the detection count."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    with (
        tempfile.NamedTemporaryFile("r", suffix=".time") as out,
        tempfile.NamedTemporaryFile("w+", suffix=".out") as stdout,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = os.path.join(tmp, "report.json")
        cmd = [report if part == REPORT else part for part in cmd]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [TIME, "-f", "%U %S %M", "-o", out.name, *cmd],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=tmp,  # tools that drop files in their working folder (fickling's safety_results.json) drop them here
            start_new_session=True,  # its own process group: a timeout stops the tool's workers too
        )
        # A blocking wait, the timeout on a timer: ``wait(timeout=...)`` polls with sleeps growing to 50 ms,
        # which rounded every wall time up to the next step of its schedule (0.064, 0.114, 0.164 s...).
        killed = threading.Event()
        timer = threading.Timer(timeout, _kill_group, (proc.pid, killed))
        timer.start()
        proc.wait()
        wall = time.perf_counter() - t0
        timer.cancel()
        if killed.is_set():
            return {"wall": float("inf"), "cpu": float("nan"), "rss_mb": float("nan"), "rc": "timeout", "stdout": "",
                    "report": ""}  # fmt: skip
        user, system, max_kb = out.read().split()[-3:]
        stdout.seek(0)
        text = stdout.read()
        written = Path(report).read_text(errors="replace") if os.path.exists(report) else ""
    return {
        "wall": wall,
        "cpu": float(user) + float(system),
        "rss_mb": int(max_kb) / 1024,
        "rc": proc.returncode,
        "stdout": text,
        "report": written,
    }


def _kill_group(pid: int, killed: threading.Event) -> None:
    """Stop a tool that ran past the timeout, with the workers it started (its process group)."""
    killed.set()
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended as the timer fired


def measure(case: str, target: Path, available: dict[str, Callable[[Path], list[str]]], args: argparse.Namespace):
    """Each tool once per repetition, in turn; medians, mlgate's paired ratios and the detection count."""
    commands = {name: make(target) for name, make in available.items()}
    runs: dict[str, list[dict]] = {name: [] for name, cmd in commands.items() if cmd}
    for _ in range(args.reps):
        for name in runs:
            if runs[name] and (runs[name][-1]["rc"] == "timeout" or runs[name][-1]["wall"] > args.slow):
                continue  # one run of a tool this slow is enough to know (keeps the bench short)
            runs[name].append(run_once(commands[name], args.timeout))
    labels = labels_of(case, target)
    bad = {n for n, label in labels.items() if label == "malicious"}
    good = {n for n, label in labels.items() if label == "benign"}
    rows = []
    for name, results in runs.items():
        # paired: mlgate's run and this tool's run of the same repetition, one after the other
        pairs = list(zip(runs["mlgate"], results, strict=False))  # a slow tool ran once: its first pair
        last = results[-1]
        found = flagged(name, last["stdout"], last["report"], target) if labels and last["rc"] != "timeout" else None
        rows.append(
            {
                "case": case,
                "tool": name,
                "runs": len(results),
                "wall_s": statistics.median(r["wall"] for r in results),
                "cpu_s": statistics.median(r["cpu"] for r in results),
                "peak_mib": statistics.median(r["rss_mb"] for r in results),
                "rc": results[-1]["rc"],
                "wall_ratio": statistics.median(_ratio(m["wall"], r["wall"]) for m, r in pairs),
                "cpu_ratio": statistics.median(_ratio(m["cpu"], r["cpu"]) for m, r in pairs),
                "detected": f"{len(found & bad)}/{len(bad)}" if found is not None else "",
                "false_alarms": f"{len(found & good)}/{len(good)}" if found is not None else "",
            }
        )
    return rows


def _ratio(mine: float, theirs: float) -> float:
    return mine / theirs if theirs not in (0, float("inf")) and theirs == theirs else float("nan")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _byte_compile(python: str) -> None:
    """Byte-compile mlgate when that Python imports it from this checkout (as a wheel install would)."""
    where = subprocess.run(
        [python, "-c", "import mlgate.analyzers as m; print(m.__file__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if Path(where).resolve().is_relative_to(REPO):
        for folder in ("analyzers", "controller"):
            compileall.compile_dir(REPO / folder, quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, help="virtual environment holding the peer scanners")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the big torch zip (sparse)")
    parser.add_argument("--huge-mb", type=int, default=4096, help="size of the multi-GB torch zip (sparse)")
    parser.add_argument("--safetensors-mb", type=int, default=1024)
    parser.add_argument("--dir-files", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, help="keep the inputs here (reused when present)")
    parser.add_argument("--only", type=lambda s: set(s.split(",")), help="comma-separated case names")
    parser.add_argument("--skip", type=lambda s: set(s.split(",")), default=set(), help="tools to leave out")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is killed")
    parser.add_argument("--slow", type=float, default=10.0, help="a tool whose run took longer runs once")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--mlgate-python", type=Path, help="Python that runs mlgate (default: this one)")
    args = parser.parse_args(argv)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="mlgate-compare-"))).absolute()  # tools run elsewhere
    work.mkdir(parents=True, exist_ok=True)
    try:
        inputs = build_inputs(work, args)
        python = str(args.mlgate_python.absolute() if args.mlgate_python else sys.executable)
        _byte_compile(python)
        available = {n: f for n, f in tools(args.peers, python).items() if f is not None and n not in args.skip}
        missing = [n for n, f in tools(args.peers).items() if f is None]
        if missing:
            print(f"not installed in --peers, skipped: {', '.join(missing)}", file=sys.stderr)
        all_rows = []
        print(f"load average {_load()} at the start; mlgate from {python}")
        print(
            f"{'case':16} {'tool':16} {'runs':>4} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} {'rc':>7} "
            f"{'wall m/x':>9} {'cpu m/x':>8} {'det':>7} {'fp':>7}"
        )
        for case, target in inputs.items():
            for row in measure(case, target, available, args):
                all_rows.append(row)
                print(
                    f"{row['case']:16} {row['tool']:16} {row['runs']:>4} {row['wall_s']:>8.3f} {row['cpu_s']:>8.3f} "
                    f"{row['peak_mib']:>9.1f} {row['rc']!s:>7} {row['wall_ratio']:>9.2f} {row['cpu_ratio']:>8.2f} "
                    f"{row['detected']:>7} {row['false_alarms']:>7}",
                    flush=True,
                )
        for line in summaries(all_rows):
            print(line)
        print(f"load average {_load()} at the end")
        if args.json:
            args.json.write_text(json.dumps(all_rows, indent=1))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    canaries = Path("/tmp/mlgate-canary")
    if canaries.exists() and any(p.name.startswith("compare-") for p in canaries.iterdir()):
        print("a canary exists: some tool executed a payload", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
