"""Scanning every fixture runs nothing: an audit hook watches a scanner process (issue 17, item 4).

A child Python process imports mlgate, installs ``sys.addaudithook`` and scans every file under
tests/fixtures (all malicious fixtures among them). The hook records process creation (except
mlgate's own HDF5 reader child, started exactly as ``hdf5_reader.child_command()``), ``exec`` of
code that is not a module being imported, sockets, file writes, ctypes and the like. The test
fails on any of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

SCRIPT = r"""
import json, os, sys
from pathlib import Path

# everything the scan may import lazily, imported before the hook goes in
import mlgate.analyzers  # noqa
from mlgate.analyzers.core.registry import analyzers_for  # noqa  (loads every analyzer module)
from mlgate.analyzers.core.budget import Budgets
from mlgate.analyzers.core.walker import ScanOptions, scan_path
from mlgate.analyzers.keras.hdf5_reader import child_command
import h5py, numpy, yaml, jinja2, zstandard, lz4.frame, py7zr  # noqa

allowed_child = child_command()
events = []
PROCESS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
           "pty.spawn", "os.startfile")
NETWORK = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
           "urllib.Request", "http.client.connect")
OTHER = ("ctypes.dlopen", "ctypes.call_function", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod",
         "shutil.rmtree", "os.truncate", "import_module_from_data", "marshal.loads", "pickle.find_class",
         "builtins.input", "webbrowser.open")
STDLIB_CODEGEN = {("dataclasses.py", "_create_fn"), ("__init__.py", "namedtuple")}


def hook(event, args):
    if event.startswith(PROCESS):
        if event == "subprocess.Popen" and list(args[1]) == allowed_child:
            return
        events.append([event, repr(args)[:300]])
    elif event == "marshal.loads":
        caller = sys._getframe(1).f_code
        if caller.co_filename.startswith("<frozen importlib") and caller.co_name == "_compile_bytecode":
            return  # a lazily imported module's cached bytecode (.pyc)
        events.append([event, caller.co_filename, caller.co_name])
    elif event == "socket.bind" and len(args) > 1 and args[1] in (("::1", 0), ("127.0.0.1", 0)):
        return  # urllib3's import-time IPv6 probe: a loopback bind, nothing leaves the host
    elif event.startswith(NETWORK) or event in OTHER:
        events.append([event, repr(args)[:300]])
    elif event == "open":
        path, mode, flags = args
        if path == os.devnull or isinstance(path, int):  # os.devnull, or a pipe the child reader is fed through
            return
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            events.append([event, repr(args)[:300]])
        elif isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            events.append([event, repr(args)[:300]])
    elif event == "exec":
        code = args[0]
        filename = getattr(code, "co_filename", "")
        if filename.endswith(".py") and os.path.isfile(filename):
            return  # a module being imported
        caller = sys._getframe(1).f_code
        if (os.path.basename(caller.co_filename), caller.co_name) in STDLIB_CODEGEN:
            return  # dataclass methods and namedtuples of a module imported lazily: built from its own source
        events.append([event, filename, caller.co_filename, caller.co_name])


sys.addaudithook(hook)
scanned = 0
for target in sorted(Path(sys.argv[1]).iterdir()):
    if target.is_dir():
        scan_path(target, ScanOptions(budgets=Budgets(max_seconds=60, max_native_seconds=5), compute_digest=False))
        scanned += 1
print(json.dumps({"events": events, "scanned": scanned}))
"""


def test_scanning_every_fixture_runs_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(FIXTURES)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["scanned"] >= 6
    assert result["events"] == []


def test_the_hook_sees_what_it_must() -> None:
    """Control: the same hook flags a process, a socket, a file write and an exec of data."""
    probe = SCRIPT.split("sys.addaudithook(hook)")[0] + (
        "sys.addaudithook(hook)\n"
        "import socket, tempfile\n"
        "subprocess_ = __import__('subprocess'); subprocess_.run(['true'])\n"
        "s = socket.socket(); s.close()\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=0.1)\nexcept OSError:\n    pass\n"
        "open(os.path.join(tempfile.gettempdir(), 'mlgate-audit-probe'), 'w').close()\n"
        "exec(compile('x = 1', '<model data>', 'exec'))\n"
        "print(json.dumps({'events': events}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    kinds = {e[0] for e in json.loads(done.stdout.strip().splitlines()[-1])["events"]}
    assert {"subprocess.Popen", "socket.connect", "open", "exec"} <= kinds, kinds
