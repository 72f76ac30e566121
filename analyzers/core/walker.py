"""The artifact walker: visit every file and member of a target, sniff, dispatch, recurse.

``scan_path`` scans one target (a file or a directory tree) and returns a
``TargetScan``: findings, whether everything was read, the references to other
models, and the content digest. Routing is by content, except that pickles are
decided by the pickle VM (``_route``): a name whose loader unpickles, or a first
byte that is a pickle opcode, sends the artifact through the VM's probe whatever
the sniffer said, and a name that promises a format the bytes are not makes the
scan incomplete (``promise_for`` in ``kinds``). Analyzers receive a ``ScanContext`` and call
``ctx.walk(child)`` to recurse into what they unpack. Every failure mode
(a budget, a parse error, an analyzer crash, a kind nobody reads) becomes a
finding that marks the scan incomplete: nothing is skipped silently.
"""

from __future__ import annotations

import functools
import os
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .artifact import Artifact, MeteredStream, read_exact
from .budget import BudgetExceeded, Budgets, BudgetTracker
from .findings import Finding, Rule, Severity
from .kinds import (
    DATA_KINDS,
    HDF5_SIGNATURE,
    NAME_ONLY_KINDS,
    OPAQUE_SUFFIXES,
    PICKLE_START_BYTES,
    SNIFF_BYTES,
    Kind,
    Promise,
    conventional_mismatch,
    expected_kinds,
    hdf5_superblock_offsets,
    posix_name,
    posix_suffix,
    promise_for,
    sniff,
)
from .records import TYPE_CHECKING
from .references import Reference, RefKind
from .registry import Probe, analyzers_for, probe_for, warm_up

if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO

    from .parallel import WorkerPool

NO_ANALYZER = Rule(
    "MLG-CORE-001", Severity.MEDIUM, "Content of a kind mlgate cannot analyze yet", "core", incomplete=True
)
BUDGET = Rule("MLG-CORE-002", Severity.MEDIUM, "Scan budget exceeded; the rest was not read", "core", incomplete=True)
MALFORMED = Rule("MLG-CORE-003", Severity.MEDIUM, "Content could not be parsed", "core", incomplete=True)
CRASH = Rule("MLG-CORE-004", Severity.HIGH, "An analyzer failed on this content", "core", incomplete=True)
UNREADABLE = Rule("MLG-CORE-005", Severity.MEDIUM, "File or member could not be read", "core", incomplete=True)
EXT_MISMATCH = Rule("MLG-CORE-006", Severity.MEDIUM, "File extension does not match its content", "core")
EXECUTABLE = Rule("MLG-CORE-007", Severity.MEDIUM, "Executable or script inside a model", "core")
LINK_OUTSIDE = Rule("MLG-CORE-008", Severity.HIGH, "Symbolic link in a model directory points outside it", "core")
POLYGLOT = Rule("MLG-CORE-010", Severity.HIGH, "File is also a zip archive (polyglot)", "core")
LINK_NOT_FOLLOWED = Rule(
    "MLG-CORE-009", Severity.MEDIUM, "Symbolic link to a directory was not followed", "core", incomplete=True
)
# Loader parity: what a name promises, and bytes the sniffer did not claim that a loader still reads.
NOT_AS_PROMISED = Rule(
    "MLG-CORE-011", Severity.MEDIUM, "Content is not the format its name promises", "core", incomplete=True
)
OPAQUE = Rule("MLG-CORE-012", Severity.INFO, "Bytes no loader mlgate knows can read", "core")
EMPTY = Rule("MLG-CORE-013", Severity.LOW, "Empty file", "core")
PICKLE_POLYGLOT = Rule("MLG-CORE-014", Severity.HIGH, "Content is also a pickle that pickle.load runs", "core")


HDF5_SUFFIXES = frozenset({".h5", ".hdf5", ".he5", ".keras", ".nc", ".weights"})
"""Names whose loaders may read HDF5 (h5py, Keras, netCDF)."""


class Malformed(Exception):
    """Raised by an analyzer when content does not parse; becomes an incomplete finding."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass
class ScanOptions:
    """How to scan: budgets, and whether to hash content for the digest.

    ``compute_digest`` stays on for library callers and the controller (verdicts are bound to
    content); ``mlgate scan`` turns it off unless asked (``--digest`` or ``[scan] digest``).
    """

    budgets: Budgets = field(default_factory=Budgets)
    compute_digest: bool = True


@dataclass
class TargetScan:
    """What the walker learned about one target; the policy turns it into a verdict."""

    target: str
    findings: list[Finding]
    complete: bool
    references: list[Reference]
    digest: str
    duration_s: float
    bytes_read: int
    members: int


class ScanContext:
    """Per-target state handed to analyzers: findings, budgets, recursion, references."""

    def __init__(self, target: str, options: ScanOptions) -> None:
        self.target = target
        self.options = options
        self.tracker = BudgetTracker(options.budgets)
        self.findings: list[Finding] = []
        self.references: list[Reference] = []
        self._budgets_reported: set[str] = set()
        self._parsed: dict[str, dict[str, object]] = {}
        self.secret_values: set[str] = set()  # never leave the scan: scrubbed from every message
        self._promised_findings: set[str] = set()
        self.files: frozenset[str] = frozenset()  # the target's top-level artifacts (relative paths)
        self.import_roots: list[str] = []  # folders of the model its loader puts on sys.path
        self.reference_kinds: Callable[[set[RefKind]], None] | None = None  # told early (``scan_path``)
        self._kinds_told: set[RefKind] = set()

    @property
    def complete(self) -> bool:
        return not any(f.incomplete for f in self.findings)

    # --- what analyzers call -------------------------------------------------------------
    def open(self, artifact: Artifact) -> BinaryIO:
        """Open ``artifact`` with every byte read charged to the target's byte budget."""
        self.tracker.check_time()
        return MeteredStream(artifact.open(), self._charge)  # type: ignore[return-value]

    def walk(self, artifact: Artifact) -> None:
        """Sniff ``artifact`` and run every analyzer registered for its kind (recursing)."""
        try:
            self.tracker.check_time()
            self.tracker.check_depth(artifact.depth)
            self.tracker.charge_member()
            head = self._head(artifact)
        except BudgetExceeded as exc:
            self.budget_exceeded(exc, artifact.location)
            return
        except OSError as exc:
            self.add(UNREADABLE.finding(artifact.location, f"could not read: {exc.strerror or exc}"))
            return
        if not head:  # size 0, or a stream (decoded member) that yields nothing
            self.add(EMPTY.finding(artifact.location, "empty file: no loader can read a model from it"))
            return
        kind = sniff(head, artifact.name)
        late_hdf5 = kind is not Kind.HDF5 and self._hdf5_past_head(artifact, len(head))
        if late_hdf5 and kind in DATA_KINDS:
            kind, late_hdf5 = Kind.HDF5, False  # a user block before the superblock: libhdf5 opens it as HDF5
        promise = promise_for(artifact.loaded_as or artifact.name)
        kind, extra = self._route(artifact, head, kind, promise)
        artifact.kind = kind
        self._check_kind(artifact, kind, promise)
        entries = analyzers_for(kind) + extra if extra else analyzers_for(kind)
        if not entries and kind not in DATA_KINDS and kind is not Kind.EXECUTABLE:
            self.add(
                NO_ANALYZER.finding(
                    artifact.location,
                    f"{kind.value} content is not analyzed by this mlgate version; "
                    "it was not read and cannot be approved",
                )
            )
        for name, analyze in entries:
            self._run(name, analyze, artifact)
        if artifact.parent is None and kind is not Kind.ZIP and self._trailing_zip(artifact):
            self.add(
                POLYGLOT.finding(
                    artifact.location,
                    f"{kind.value} content that also ends with a zip directory: loaders that look for the "
                    "zip end record (zipfile, Keras) read different content than loaders that read the "
                    "start; the zip view was scanned too",
                )
            )
            for name, analyze in analyzers_for(Kind.ZIP):
                self._run(name, analyze, artifact)
        if late_hdf5:  # also an HDF5 file (h5py finds the superblock past the head): read that view too
            for name, analyze in analyzers_for(Kind.HDF5):
                self._run(name, analyze, artifact)
        self._parsed.pop(artifact.location, None)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def parsed(self, artifact: Artifact) -> dict[str, object]:
        """Structures parsed from ``artifact`` that every analyzer of it may reuse (e.g. its zip
        directory), so several analyzers of one artifact parse it once. Dropped after its walk."""
        return self._parsed.setdefault(artifact.location, {})

    def add_reference(self, reference: Reference) -> None:
        self.references.append(reference)
        if self.reference_kinds is not None and reference.kind not in self._kinds_told:
            self._kinds_told.add(reference.kind)
            self.reference_kinds({reference.kind})

    def observe_document(self, location: str, text: str, reachable: bool = True) -> None:
        """The text of a whole file or stream an analyzer read (a config, a header, a pickle stream
        decoded as latin-1): report the secrets it holds, at ``location@offset``, and when a loader
        reads it (``reachable``) the network locations it names (docs/secrets.md)."""
        from ..secrets import inspect_document

        self._observed(inspect_document(location, text, reachable))

    def observe_value(self, location: str, value: str, field: str) -> None:
        """One value of a secret-named field (``token``, ``password``...): flagged when it looks like a
        secret even without a known token shape. Values already reported are not reported again."""
        from ..secrets import inspect_value

        self._observed(inspect_value(location, value, field, self.secret_values))

    def _observed(self, result: tuple[list[Finding], set[str]]) -> None:
        findings, values = result
        self.secret_values.update(values)
        self.findings.extend(findings)

    def ships(self, path: str) -> bool:
        """Whether the target holds ``path`` (a normalised relative path) as a file or a folder."""
        return path in self.files or any(name.startswith(f"{path}/") for name in self.files)

    def add_import_root(self, folder: str) -> None:
        """A folder of the model that its loader puts on ``sys.path`` (an MLflow ``code`` folder)."""
        if folder not in self.import_roots:
            self.import_roots.append(folder)

    def shipped_module(self, module: str) -> str | None:
        """The file of the model that ``import module`` loads through an import root, or None."""
        stem = module.replace(".", "/")
        for root in self.import_roots:
            for candidate in (f"{root}/{stem}.py", f"{root}/{stem}/__init__.py"):
                if candidate in self.files:
                    return candidate
        return None

    def settle_shipped_code(self) -> None:
        """Lower findings about unknown modules that the model ships on its import path (scanned too)."""
        for index, finding in enumerate(self.findings):
            if not finding.code_module or finding.severity <= Severity.LOW:
                continue
            shipped = self.shipped_module(finding.code_module)
            if shipped is not None:
                self.findings[index] = replace(
                    finding,
                    severity=Severity.LOW,
                    message=f"{finding.message} [module {finding.code_module} ships with the model as {shipped}, "
                    "which the loader puts on sys.path; it was scanned: its own findings say what it does]",
                )

    def budget_exceeded(self, exc: BudgetExceeded, location: str) -> None:
        """Record a budget overrun once per budget (later overruns of the same budget add nothing)."""
        if exc.budget in self._budgets_reported:
            return
        self._budgets_reported.add(exc.budget)
        self.add(BUDGET.finding(location, f"scan stopped: {exc.detail} (budget {exc.budget})"))

    # --- internals -----------------------------------------------------------------------
    def _charge(self, n: int) -> None:
        self.tracker.charge_bytes(n)
        self.tracker.check_time()

    def _head(self, artifact: Artifact) -> bytes:
        head = artifact.read_head(SNIFF_BYTES)
        self._charge(len(head))
        return head

    def _hdf5_past_head(self, artifact: Artifact, head_len: int) -> bool:
        """An HDF5 superblock at a power-of-two offset past the sniffed head (libhdf5 searches 0,
        512, 1024, ... up to the end of the file). Probed for top-level files (seeks are cheap: local
        files, ranged S3 reads) and for members named like HDF5; other members are routed by their
        head (a member inside a compressed container would be decompressed up to each offset)."""
        if artifact.parent is not None and not named_like_hdf5(artifact.name):
            return False  # checked first: it is what decides for almost every archive member
        offsets = [off for off in hdf5_superblock_offsets(artifact.size or 0) if off >= head_len]
        if not offsets:
            return False
        try:
            with self.open(artifact) as stream:
                for off in offsets:
                    stream.seek(off)
                    if read_exact(stream, 8) == HDF5_SIGNATURE:
                        return True
        except BudgetExceeded as exc:
            self.budget_exceeded(exc, artifact.location)
        except OSError:
            pass  # the analyzers reading this artifact report what cannot be read
        return False

    def _trailing_zip(self, artifact: Artifact) -> bool:
        """True when a top-level file also carries a valid zip end record and central directory.

        Only top-level files are checked (one small tail read each), which is where a
        loader meets them; members inside containers are routed by their head.
        """
        size = artifact.size or 0
        if size < 22:
            return False
        try:
            with self.open(artifact) as stream:
                start = max(0, size - (22 + 0xFFFF))
                stream.seek(start)
                tail = read_exact(stream, size - start)
                pos = tail.rfind(b"PK\x05\x06")
                if pos < 0 or len(tail) - pos < 22:
                    return False
                cd_size, _cd_offset = struct.unpack_from("<LL", tail, pos + 12)
                cd_start = start + pos - cd_size
                if cd_size == 0 or cd_start < 0:  # an empty directory hides nothing
                    return False
                stream.seek(cd_start)
                return read_exact(stream, 4) == b"PK\x01\x02"
        except BudgetExceeded as exc:
            self.budget_exceeded(exc, artifact.location)
            return False
        except (OSError, struct.error):
            return False

    def _route(
        self, artifact: Artifact, head: bytes, kind: Kind, promise: Promise | None
    ) -> tuple[Kind, tuple[tuple[str, object], ...]]:
        """Run the pickle VM on what the sniffer did not call a pickle, when a loader would unpickle it.

        A pickle may start with any opcode and push megabytes before its first import, so the
        sniffer's verdict is not the last word: a name that selects a pickle loader (``.pkl``,
        ``.pt``, ``.bin``, ``.npy``...) always goes through the VM unless the loader reads the
        sniffed container first (``torch.load`` a zip); any other stream starting with a valid
        opcode goes through it too (non-pickles fail within a few bytes). The VM decides.
        Returns the kind to use and extra (name, analyzer) pairs to run.
        """
        if kind is Kind.PICKLE or (promise is not None and kind in promise.accepts and kind not in NAME_ONLY_KINDS):
            return kind, ()  # the loader this name selects reads the sniffed format (by its magic), not a pickle
        by_name = promise is not None and promise.pickle_loader
        if head[0] not in PICKLE_START_BYTES:  # every unpickler fails on the first byte
            if not (by_name and promise is not None and promise.strict):
                return kind, ()  # and the name promises no pickle: nothing to report (most archive members)
            verdict = Probe(False, f"pickle.load fails at offset 0: 0x{head[0]:02x} is not a pickle opcode")
            probe = None
        else:
            probe = probe_for(Kind.PICKLE)
            if probe is None:
                return kind, ()
        try:
            if probe is not None:  # a bare import claims only under a strict name (.bin, .dat: content decides)
                verdict = probe(artifact, self, head, by_name and promise is not None and promise.strict)
        except BudgetExceeded as exc:
            self.budget_exceeded(exc, artifact.location)
            return kind, ()
        except OSError as exc:
            self.add(UNREADABLE.finding(artifact.location, f"pickle probe could not read: {exc}"))
            return kind, ()
        if not verdict.claimed:
            if by_name and promise is not None and promise.strict:
                self._promised_findings.add(artifact.location)
                self.add(
                    NOT_AS_PROMISED.finding(
                        artifact.location,
                        f"named like a {promise.label}, whose loader unpickles content it does not recognise, but "
                        f"these bytes ({kind.value}) are not a pickle either ({verdict.detail}): the model cannot be "
                        "read as what it claims to be",
                    )
                )
            return kind, ()
        if kind in DATA_KINDS:
            return Kind.PICKLE, ()
        self.add(
            PICKLE_POLYGLOT.finding(
                artifact.location,
                f"sniffed as {kind.value}, but the pickle VM reads it as a pickle ({verdict.detail}): a loader "
                "that unpickles it acts on different content than a loader of the other format; both were scanned",
            )
        )
        return kind, analyzers_for(Kind.PICKLE)

    def _check_kind(self, artifact: Artifact, kind: Kind, promise: Promise | None = None) -> None:
        if kind is Kind.EXECUTABLE:
            self.add(EXECUTABLE.finding(artifact.location, "native executable or script shipped with the model"))
        if promise is not None and kind not in promise.accepts:
            suffix = posix_suffix(posix_name((artifact.loaded_as or artifact.name).replace("\\", "/"))).lower()
            if artifact.location in self._promised_findings:
                pass  # already reported by the pickle route, with the VM's reason
            elif promise.strict:
                self.add(
                    NOT_AS_PROMISED.finding(
                        artifact.location,
                        f"named like a {promise.label} but the content is {kind.value}: the loader this name "
                        "selects fails on it or reads something else, so the model cannot be read as promised",
                    )
                )
            elif kind in DATA_KINDS and suffix in OPAQUE_SUFFIXES:
                self.add(
                    OPAQUE.finding(
                        artifact.location,
                        f"{suffix} bytes that are not a pickle, archive, tensor file or any format mlgate parses: "
                        "opaque to every loader mlgate knows (raw weights, CTranslate2, fastText...); nothing in "
                        "them was analyzed, and no loader mlgate knows would execute them",
                    )
                )
        expected = expected_kinds(artifact.name)
        if expected is not None and kind not in expected and kind is not Kind.UNKNOWN:
            wanted = "/".join(sorted(k.value for k in expected))
            convention = conventional_mismatch(artifact.name, kind)
            if convention is not None:
                message = f"named like {wanted} but the content is {kind.value}: {convention}"
                self.add(EXT_MISMATCH.finding(artifact.location, message, severity=Severity.LOW))
                return
            self.add(
                EXT_MISMATCH.finding(
                    artifact.location,
                    f"named like {wanted} but the content is {kind.value}; loaders that trust the "
                    "extension will be surprised",
                )
            )

    def _run(self, name: str, analyze: object, artifact: Artifact) -> None:
        try:
            for finding in analyze(artifact, self):  # type: ignore[operator]
                self.add(finding)
        except BudgetExceeded as exc:
            self.budget_exceeded(exc, artifact.location)
        except Malformed as exc:
            where = artifact.location if exc.offset is None else artifact.at(exc.offset)
            self.add(MALFORMED.finding(where, f"{name}: {exc}"))
        except RecursionError:
            self.add(MALFORMED.finding(artifact.location, f"{name}: structure nested too deeply to parse"))
        except MemoryError:
            self.add(CRASH.finding(artifact.location, f"{name}: ran out of memory"))
        except OSError as exc:
            self.add(UNREADABLE.finding(artifact.location, f"{name}: could not read: {exc}"))
        except Exception as exc:
            import logging  # loaded for a crash only: the scan path logs nothing else

            logging.getLogger(__name__).debug("analyzer %s crashed on %s", name, artifact.location, exc_info=True)
            self.add(CRASH.finding(artifact.location, f"{name} analyzer failed: {type(exc).__name__}: {exc}"))


def scan_path(
    path: str | os.PathLike[str],
    options: ScanOptions | None = None,
    label: str | None = None,
    pool: WorkerPool | None = None,
    reference_kinds: Callable[[set[RefKind]], None] | None = None,
) -> TargetScan:
    """Scan one local target: a file, or a directory tree.

    With a ``pool`` (``core/parallel.py``) the files are walked on its worker processes; the
    result is the same as without. ``reference_kinds`` is told the kind of each reference as the walk
    finds it (once a kind), while the walk goes on: the caller prepares their resolvers meanwhile.
    Raises FileNotFoundError/PermissionError/IsADirectoryError when the target itself
    cannot be opened (a usage error for the caller, not a finding).
    """
    options = options or ScanOptions()
    root = os.fspath(path)  # plain strings: pathlib loads only for a folder (start-up, issue 19)
    target = label or str(path)
    ctx = ScanContext(target, options)
    ctx.reference_kinds = reference_kinds
    if os.path.isdir(root):
        from pathlib import Path

        files = _directory_files(Path(root), ctx)
    else:
        with open(root, "rb"):
            pass  # surface the OSError to the caller before anything else happens
        files = [(posix_name(root), root)]
    artifacts = [Artifact.from_file(file_path, rel) for rel, file_path in files]
    walk_all = None
    if pool is None:
        warm_up_for(rel for rel, _ in files)
    elif artifacts:
        walk_all = functools.partial(pool.walk, [file_path for _, file_path in files])
    if not options.compute_digest:
        return scan_artifacts(artifacts, ctx, content_hash=None, walk_all=walk_all)
    from .digest import FileHasher  # the hashing threads load only when a digest is asked for

    # Hashing runs on threads while the analysis walks the same files (docs/contracts.md §1 ``digest``).
    with FileHasher(dict(files)) as hasher:
        return scan_artifacts(
            artifacts, ctx, content_hash=lambda artifact: hasher.result(artifact.location), walk_all=walk_all
        )


def scan_artifacts(
    artifacts: list[Artifact],
    ctx: ScanContext,
    content_hash: Callable[[Artifact], str] | None,
    walk_all: Callable[[list[Artifact], ScanContext], None] | None = None,
) -> TargetScan:
    """Scan the top-level artifacts of one target (local files, S3 objects, MLflow artifacts).

    ``content_hash`` gives each artifact's content hash for the digest manifest
    (sha256 for local files; sources with their own content ids, such as S3
    version ids or ETags, supply those); ``None`` skips the digest. ``walk_all`` walks them
    all into ``ctx`` (``WorkerPool.walk``); by default, one after the other here.
    """
    started = time.monotonic()
    ctx.files = frozenset(artifact.location for artifact in artifacts)
    if walk_all is not None:
        walk_all(artifacts, ctx)
    else:
        for artifact in artifacts:
            walk_top(ctx, artifact)
    hashes = [(artifact.location, content_hash(artifact)) for artifact in artifacts] if content_hash else []
    if ctx.secret_values:
        from ..secrets import redact

        ctx.findings[:] = [
            replace(f, message=redact(f.message, ctx.secret_values), location=redact(f.location, ctx.secret_values))
            for f in ctx.findings
        ]
        ctx.references[:] = [replace(r, ref=redact(r.ref, ctx.secret_values)) for r in ctx.references]
    ctx.settle_shipped_code()
    return TargetScan(
        target=ctx.target,
        findings=ctx.findings,
        complete=ctx.complete,
        references=ctx.references,
        digest=_manifest_digest(hashes) if content_hash is not None else "",
        duration_s=time.monotonic() - min(started, ctx.tracker.started),
        bytes_read=ctx.tracker.bytes_read,
        members=ctx.tracker.members,
    )


def warm_up_for(names: Iterable[str]) -> None:
    """Start, in the background, what the files named ``names`` will need: the h5py child when one is
    named like HDF5 (a ``.h5``, or a ``.keras`` zip with its ``model.weights.h5``), so that it imports
    h5py while the walk reads other files."""
    if any_hdf5(names):
        warm_up(Kind.HDF5)


def any_hdf5(names: Iterable[str]) -> bool:
    """Whether one of ``names`` is named like a file whose loader reads HDF5."""
    return any(map(named_like_hdf5, names))


def named_like_hdf5(name: str) -> bool:
    """Whether ``name`` (a path, either separator) is named like a file whose loader may read HDF5."""
    return posix_suffix(posix_name(name)).lower() in HDF5_SUFFIXES


def walk_top(ctx: ScanContext, artifact: Artifact) -> None:
    """Walk one top-level artifact; an error the walk itself raises is a finding, never a lost file."""
    try:
        ctx.walk(artifact)
    except Exception as exc:
        import logging  # loaded for a crash only

        logging.getLogger(__name__).debug("walking %s failed", artifact.location, exc_info=True)
        ctx.add(CRASH.finding(artifact.location, f"the scan of this file failed: {type(exc).__name__}: {exc}"))


def _manifest_digest(hashes: list[tuple[str, str]]) -> str:
    from .digest import manifest_digest

    return manifest_digest(hashes)


def _directory_files(root: Path, ctx: ScanContext) -> list[tuple[str, str]]:
    """Every regular file below ``root`` as (posix relative path, path), sorted: each folder's files by
    name, then its subfolders by name (``os.scandir``: no ``stat`` or path object per plain file).

    Symlinks to files are followed (loaders follow them; the Hugging Face cache is
    made of them) and reported when they leave the tree; symlinks to directories
    are not followed and are reported as not read; a folder that cannot be listed is reported.
    """
    from pathlib import Path  # a folder's walk only: a single file's scan never loads pathlib

    out: list[tuple[str, str]] = []
    real_root = root.resolve()
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            ctx.add(UNREADABLE.finding(prefix.rstrip("/") or ".", f"folder could not be listed: {exc.strerror or exc}"))
            continue
        files, subfolders = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (subfolders if is_dir else files).append(entry)
        for entry in subfolders:
            if entry.is_symlink():
                why = f"symlink to a directory ({os.readlink(entry.path)}) not scanned"
                ctx.add(LINK_NOT_FOLLOWED.finding(prefix + entry.name, why))
        for entry in files:
            rel = prefix + entry.name
            if entry.is_symlink():
                full = Path(entry.path)
                target = full.resolve()
                if not _inside(target, real_root) and not _hf_cache_blob(full, target):
                    ctx.add(
                        LINK_OUTSIDE.finding(
                            rel,
                            f"symlink to {os.readlink(full)} outside the model directory: registry uploads, copies "
                            "and archives follow it and ship that file's content with the model",
                        )
                    )
                if not target.is_file():
                    ctx.add(UNREADABLE.finding(rel, f"symlink target {os.readlink(full)} is not a readable file"))
                    continue
            out.append((rel, entry.path))
        stack.extend((entry.path, f"{prefix}{entry.name}/") for entry in reversed(subfolders) if not entry.is_symlink())
    return out


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _hf_cache_blob(link: Path, target: Path) -> bool:
    """Hugging Face cache snapshots are symlinks ``<repo>/snapshots/<rev>/f -> ../../blobs/<hash>``.

    Only a link under ``snapshots/<rev>/`` whose target is a file directly in the *same* repo
    folder's ``blobs/`` qualifies (another repo's blobs, or any folder named ``blobs``, do not).
    """
    from pathlib import Path

    parts = link.absolute().parts
    marks = [i for i, part in enumerate(parts) if part == "snapshots"]
    if not marks or marks[-1] + 2 >= len(parts):
        return False
    repo = Path(*parts[: marks[-1]]).resolve()
    return target.parent == repo / "blobs"
