"""HDF5 attributes read in a child process with a hard deadline (a scan cannot hang in libhdf5).

h5py can block inside libhdf5's C code on crafted metadata, where neither the
scan's time budget nor a signal reaches it. ``read_attrs`` therefore runs h5py
in a child process (``hdf5_child.py``, started as a plain script) and serves
the bytes it asks for from the artifact's stream, so every byte is still
charged to the scan's budgets and nothing but the pipes is shared. When the
deadline passes -- ``Budgets.max_native_seconds`` or the scan's own
``max_seconds``, whichever comes first -- the child is killed and the scan
stops with a budget finding (incomplete). A child that dies or reports a
libhdf5 error makes the content malformed (incomplete), never clean.

A child that answered is kept (``_IDLE``, at most ``MAX_IDLE``) and serves the next
HDF5 file of this process, so a folder or a list of Keras models pays Python's and
h5py's start-up once, not per file; a child that failed, timed out or reported an
error is stopped and never serves another file. The child is no sandbox (it runs as
the user, like the scanner); it exists so a deadline can stop libhdf5.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

from ..core.artifact import read_exact
from ..core.budget import BudgetExceeded
from ..core.kinds import HDF5_SIGNATURE, hdf5_superblock_offsets
from ..core.walker import Malformed, ScanContext

CHILD_SCRIPT = Path(__file__).with_name("hdf5_child.py")
STARTUP_SECONDS = 60.0
"""How long the child may take to start and import h5py (content plays no part in it; a loaded
machine can take seconds). Bounded by the scan's ``max_seconds`` too."""
HEAD_BYTES = 64 << 10
"""The first bytes of the file are sent with the request (a small file whole: one round trip to the child)."""
MAX_REPLY = 64 << 20
"""Largest single read served to the child (libhdf5 reads metadata in small blocks)."""


def child_command() -> list[str]:
    """The command that starts the h5py child (isolated mode: no user site, no PYTHON* variables)."""
    return [sys.executable, "-I", str(CHILD_SCRIPT)]


def read_attrs(stream: BinaryIO, size: int, names: list[str], ctx: ScanContext) -> dict[str, str]:
    """The text of the root attributes ``names`` of the HDF5 file in ``stream`` (seekable, ``size`` bytes)."""
    problem = superblock_problem(stream, size)
    if problem:  # what libhdf5 answers at once: no child process for content it refuses before parsing
        raise Malformed(f"HDF5 file could not be opened: {problem}")
    budgets = ctx.tracker.budgets
    native_deadline = deadline = 0.0
    reader: _Reader | None = None
    try:
        reader = _take(min(time.monotonic() + STARTUP_SECONDS, ctx.tracker.deadline))
        native_deadline = time.monotonic() + budgets.max_native_seconds
        deadline = min(native_deadline, ctx.tracker.deadline)
        result = _serve(reader.proc, stream, size, names, deadline)
    except TimeoutError:
        if reader is not None:
            reader.close()
        if deadline and deadline == native_deadline:
            raise BudgetExceeded(
                "max_native_seconds",
                f"libhdf5 did not finish reading the file within {budgets.max_native_seconds:g} s; "
                "its reader was stopped",
            ) from None
        raise BudgetExceeded("max_seconds", f"scan took longer than {budgets.max_seconds:g} s") from None
    except BaseException:
        if reader is not None:
            reader.close()  # mid-answer or dead: it serves no other file
        raise
    if "error" in result:
        reader.close()  # libhdf5 failed on this file: a fresh child reads the next one
        raise Malformed(f"HDF5 file could not be opened: {result['error']}")
    _give_back(reader)
    attrs = result.get("attrs")
    if not isinstance(attrs, dict):
        raise Malformed("HDF5 reader returned no attributes")
    return {str(k): str(v) for k, v in attrs.items()}


MAX_IDLE = 4
"""Answered children kept for the next file (one per scanning thread is enough)."""
_IDLE: list[_Reader] = []
_STARTING: list[_Reader] = []  # started by ``prestart``, not known ready yet
_IDLE_LOCK = threading.Lock()


def prestart() -> None:
    """Start a child now, unless this process has one, so that h5py imports while the caller reads
    other files; the next HDF5 file takes it (a scan that sees HDF5 files ahead calls this)."""
    with _IDLE_LOCK:
        if _IDLE or _STARTING:
            return
        _STARTING.append(_Reader(0.0, wait=False))


def _take(deadline: float) -> _Reader:
    """An idle child of this process, or a new one (ready: h5py imported)."""
    with _IDLE_LOCK:
        reader = _IDLE.pop() if _IDLE else None
        starting = _STARTING.pop() if reader is None and _STARTING else None
    if starting is not None:
        starting.wait_ready(deadline)
        return starting
    if reader is not None and reader.proc.poll() is None:
        return reader
    if reader is not None:
        reader.close()
    return _Reader(deadline)


def _give_back(reader: _Reader) -> None:
    with _IDLE_LOCK:
        if len(_IDLE) < MAX_IDLE:
            _IDLE.append(reader)
            return
    reader.close()


def close_idle() -> None:
    """Stop the idle children (at exit; a forked process forgets its parent's instead)."""
    with _IDLE_LOCK:
        idle = _IDLE[:] + _STARTING[:]
        _IDLE.clear()
        _STARTING.clear()
    for reader in idle:
        reader.close()


def _forget_after_fork() -> None:
    global _IDLE_LOCK
    _IDLE_LOCK = threading.Lock()
    _IDLE.clear()  # the parent's children are not the fork's to use
    _STARTING.clear()


_REAPED_IN: int | None = None  # the process that stops its children on leaving


def _stop_children_on_exit() -> None:
    """A pool worker leaves by ``os._exit``, past ``atexit``: stop its children (and count their CPU
    time in its own) from multiprocessing's exit hooks instead."""
    global _REAPED_IN
    if _REAPED_IN == os.getpid():
        return
    _REAPED_IN = os.getpid()
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None and multiprocessing.parent_process() is not None:
        from multiprocessing import util

        util.Finalize(None, close_idle, exitpriority=10)


atexit.register(close_idle)
os.register_at_fork(after_in_child=_forget_after_fork)


class _Reader:
    """The h5py child process of one target: started once, ready when it has imported h5py."""

    def __init__(self, deadline: float, wait: bool = True) -> None:
        _stop_children_on_exit()
        self.proc = subprocess.Popen(
            child_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        if wait:
            self.wait_ready(deadline)

    def wait_ready(self, deadline: float) -> None:
        """Wait until the child has imported h5py (closed when it does not in time)."""
        try:
            _await_ready(self.proc, deadline)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the child (closing its stdin ends a waiting child; a busy one is killed)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass


_SIZES = frozenset({2, 4, 8, 16, 32})  # sizes of offsets and lengths libhdf5 accepts in a superblock


def superblock_problem(stream: BinaryIO, size: int) -> str:
    """Why libhdf5 refuses the file before parsing anything ("" when it does not): no signature where it
    looks (0, 512, 1024, ... below ``size``), or a superblock version or address size it does not know."""
    for offset in hdf5_superblock_offsets(size):
        stream.seek(offset)
        head = read_exact(stream, 16)
        if head[:8] != HDF5_SIGNATURE:
            continue
        version = head[8] if len(head) > 8 else -1
        if version not in (0, 1, 2, 3):
            return f"unknown superblock version {version}"
        sizes = (head[9:10], head[10:11]) if version >= 2 else (head[13:14], head[14:15])
        if any(not b or b[0] not in _SIZES for b in sizes):
            return "bad byte number in an address or length"
        return ""
    return "file signature not found"


def _await_ready(proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Wait for the child's ``H`` (h5py imported); its start-up does not count against the parse deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as sel:
        hello = _receive(sel, fd, deadline)
    if hello != b"H":
        code = proc.wait()
        raise Malformed(f"HDF5 reader did not start (exit status {code})")


def _serve(proc: subprocess.Popen[bytes], stream: BinaryIO, size: int, names: list[str], deadline: float) -> dict:
    assert proc.stdin is not None and proc.stdout is not None
    out_fd, in_fd = proc.stdout.fileno(), proc.stdin.fileno()
    os.set_blocking(out_fd, False)
    os.set_blocking(in_fd, False)
    pending = bytearray()
    with selectors.DefaultSelector() as sel:
        stream.seek(0)
        head = read_exact(stream, min(size, HEAD_BYTES))
        request = struct.pack("<Q", size) + json.dumps(names).encode() + b"\n" + struct.pack("<I", len(head))
        _send(sel, in_fd, request + head, deadline)
        while True:
            if pending[:1] == b"R" and len(pending) >= 13:
                offset, length = struct.unpack("<QI", pending[1:13])
                del pending[:13]
                _send(sel, in_fd, _reply(stream, size, offset, length), deadline)
                continue
            if pending[:1] == b"D" and len(pending) >= 5:
                (length,) = struct.unpack("<I", pending[1:5])
                if len(pending) >= 5 + length:
                    try:
                        return json.loads(bytes(pending[5 : 5 + length]))
                    except ValueError:
                        raise Malformed("HDF5 reader sent an unreadable answer") from None
            elif pending and pending[:1] not in (b"R", b"D"):
                raise Malformed("HDF5 reader sent an unreadable answer")
            chunk = _receive(sel, out_fd, deadline)
            if not chunk:
                code = proc.wait()
                raise Malformed(f"HDF5 reader ended without an answer (exit status {code}): libhdf5 crashed on it")
            pending += chunk


def _reply(stream: BinaryIO, size: int, offset: int, length: int) -> bytes:
    if offset > size or length > MAX_REPLY:
        raise Malformed(f"HDF5 reader asked for {length} bytes at offset {offset}")
    stream.seek(offset)
    data = read_exact(stream, length)
    return struct.pack("<I", len(data)) + data


def _receive(sel: selectors.BaseSelector, fd: int, deadline: float) -> bytes:
    sel.register(fd, selectors.EVENT_READ)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if sel.select(min(remaining, 1.0)):
                try:
                    return os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
    finally:
        sel.unregister(fd)


def _send(sel: selectors.BaseSelector, fd: int, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    sel.register(fd, selectors.EVENT_WRITE)
    try:
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if sel.select(min(remaining, 1.0)):
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    raise Malformed("HDF5 reader ended early: libhdf5 crashed on it") from None
    finally:
        sel.unregister(fd)
