"""Scan orchestration: one target path -> one ``TargetReport`` under a policy, dependencies included.

This is the single entry point the CLI, the MLflow controller, the S3 watcher
and the admission tooling use to scan something. Each reference the walker
found is handed to the resolver (``controller/resolver/interface.py``); what it resolves
to is scanned with the same analyzers through the same code, recursively, and
its verdict feeds the target's through ``DependencyReport``. Recursion stops at
``MAX_DEPENDENCY_DEPTH`` (deeper dependencies are unresolved, so the default
policy quarantines) and at cycles (a model already being scanned higher in the
chain is decided there). A dependency named twice in one scan is scanned once.
"""

from __future__ import annotations

import os
from _thread import allocate_lock
from dataclasses import replace

from mlgate.analyzers.core.artifact import LEVEL_SEPARATOR
from mlgate.analyzers.core.policy import Policy, SignaturePolicy, Verdict
from mlgate.analyzers.core.report import DependencyReport, TargetReport, build_report
from mlgate.analyzers.core.walker import ScanOptions, TargetScan, scan_path

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up, issue 19)
if TYPE_CHECKING:
    import threading

    from mlgate.analyzers.core.parallel import WorkerPool
    from mlgate.analyzers.core.references import Reference, RefKind

    from .resolver import Origin, Resolution, Resolver

MAX_DEPENDENCY_DEPTH = 4
"""Dependencies of dependencies are followed this deep (adapter -> base -> code repo is 2)."""

_LOCATION_SEPARATORS = (LEVEL_SEPARATOR, "/", "@", "#", ":")


def scan_target(
    path: str | os.PathLike[str],
    policy: Policy,
    label: str | None = None,
    resolver: Resolver | None = None,
    compute_digest: bool = True,
    pool: WorkerPool | None = None,
) -> TargetReport:
    """Scan ``path`` (file or directory) and its dependencies; decide its verdict under ``policy``.

    ``compute_digest`` hashes every file for the report's ``digest`` (and its dependencies'),
    overlapped with the analysis; off, the digest is empty (``null`` in JSON). The controller
    keeps it on: its verdicts are signed over the digest.

    ``resolver`` defaults to ``default_resolver()`` (hub cache, MLflow, S3 and local paths from the
    environment). Raises ``OSError`` when ``path`` itself cannot be opened (callers report it as a
    usage error or a failed scan, never as approved). ``pool`` walks the files of the target and of
    its dependencies on worker processes (``analyzers/core/parallel.py``; same report as without).
    """
    session = _Session(policy, resolver, compute_digest=compute_digest, pool=pool)
    return session.scan(os.fspath(path), label, chain=(), identity=os.path.realpath(path))


def _may_be_signed(path: str | os.PathLike[str], policy: SignaturePolicy) -> bool:
    """Whether ``verify_signature`` can have something to say: the policy uses signatures, or the target
    carries a signature file. Otherwise it finds nothing (no findings, no signer), and the verifier and
    pathlib are not loaded (start-up of a scan, issue 19)."""
    if policy.require or policy.has_trust:
        return True
    name = policy.signature_file
    folder = path if os.path.isdir(path) else os.path.dirname(os.fspath(path))
    return os.path.isfile(os.path.join(folder, name))


def resolve_dependencies(
    scan: TargetScan, policy: Policy, origin: Origin, resolver: Resolver | None = None
) -> list[DependencyReport]:
    """Dependency reports for a scan made elsewhere (an S3 model read in place, an MLflow download)."""
    session = _Session(policy, resolver)
    return session.dependencies(scan, origin, chain=(scan.target,))


class _Session:
    """One top-level scan: the resolver, the policy, and dependencies already scanned (by identity)."""

    def __init__(
        self,
        policy: Policy,
        resolver: Resolver | None,
        max_depth: int = MAX_DEPENDENCY_DEPTH,
        compute_digest: bool = True,
        pool: WorkerPool | None = None,
    ) -> None:
        self.policy = policy
        self.pool = pool
        self.compute_digest = compute_digest
        self._resolver = resolver
        self.max_depth = max_depth
        self.done: dict[str, TargetReport] = {}
        self._lock = allocate_lock()  # _thread: threading loads only when a resolver is prepared
        self._preparing: list[threading.Thread] = []

    @property
    def resolver(self) -> Resolver:
        """The resolver; the default one (hub cache, MLflow and S3 clients) is built on the first reference."""
        with self._lock:
            if self._resolver is None:
                from .resolver import default_resolver

                self._resolver = default_resolver()
            return self._resolver

    def prepare(self, kinds: set[RefKind]) -> None:
        """References of ``kinds`` are coming (the walk found one): load their resolvers on a thread
        (boto3, MLflow) while the walk goes on (on the pool, or here between its waits on the h5py child)."""
        import threading

        thread = threading.Thread(target=self._prepare, args=(kinds,), name="mlgate-resolver", daemon=True)
        thread.start()
        self._preparing.append(thread)

    def _prepare(self, kinds: set[RefKind]) -> None:
        try:
            prepare = getattr(self.resolver, "prepare", None)  # a caller's own resolver may not have it
            if prepare is not None:
                prepare(kinds)
        except Exception:  # resolving reports it, in the scan's own thread
            import logging

            logging.getLogger(__name__).debug(
                "preparing resolvers for %s failed", sorted(k.value for k in kinds), exc_info=True
            )

    def scan(
        self, path: str | os.PathLike[str], label: str | None, chain: tuple[str, ...], identity: str
    ) -> TargetReport:
        scan = scan_path(
            path,
            ScanOptions(budgets=self.policy.budgets, compute_digest=self.compute_digest),
            label=label,
            pool=self.pool,
            reference_kinds=self.prepare,
        )
        signer = signature_file = None
        if _may_be_signed(path, self.policy.signatures):
            from pathlib import Path

            from mlgate.analyzers.signatures import verify_signature

            signature = verify_signature(Path(path), self.policy.signatures)
            scan.findings.extend(signature.findings)
            signer, signature_file = signature.signer, signature.signature_file
        deps: list[DependencyReport] = []
        for thread in self._preparing:
            thread.join()  # one client per resolver: what the thread builds is what resolves
        self._preparing.clear()
        if scan.references:  # only a model naming others loads the resolvers
            from .resolver import Origin

            deps = self.dependencies(scan, Origin.for_path(path), chain + (identity,))
        return replace(build_report(scan, self.policy, deps), signer=signer, signature_file=signature_file)

    def dependencies(self, scan: TargetScan, origin: Origin, chain: tuple[str, ...]) -> list[DependencyReport]:
        seen: set[tuple[object, ...]] = set()
        out = []
        for ref in scan.references:
            key = (ref.kind, ref.ref, ref.revision, ref.location)
            if key not in seen:
                seen.add(key)
                out.append(self.dependency(ref, scan, origin, chain))
        return out

    def dependency(self, ref: Reference, scan: TargetScan, origin: Origin, chain: tuple[str, ...]) -> DependencyReport:
        report = DependencyReport(
            ref=ref.ref,
            kind=ref.kind.value,
            location=ref.location,
            resolved=False,
            revision=ref.revision,
            field=ref.field,
        )
        if len(chain) > self.max_depth:
            report.reason = f"dependency chain deeper than {self.max_depth} levels; not followed"
            return report
        resolution = self.resolver.resolve(ref, origin)
        try:
            return self._fill(report, resolution, scan, chain)
        finally:
            resolution.release()

    def _fill(
        self, report: DependencyReport, res: Resolution, scan: TargetScan, chain: tuple[str, ...]
    ) -> DependencyReport:
        report.reason = res.reason
        report.resolved_to = res.resolved_to
        if not res.resolved:
            return report
        if res.inside_target is not None:
            return self._inside(report, res.inside_target, scan)
        if res.path is None:
            report.resolved = False
            report.reason = res.reason or "resolver returned nothing to scan"
            return report
        report.resolved = True
        identity = res.identity or str(res.path.resolve())
        if identity in chain:
            report.verdict = Verdict.APPROVED
            report.reason = _join(res.reason, "cycle: already being scanned higher in this chain, which decides it")
            return report
        dep = self.done.get(identity)
        if dep is None:
            dep = self.scan(res.path, report.ref, chain, identity)
            self.done[identity] = dep
        report.verdict = dep.verdict
        report.digest = dep.digest
        report.findings = dep.findings
        report.dependencies = dep.dependencies
        if not dep.scan_complete:
            report.reason = _join(report.reason, "dependency scan incomplete")
        return report

    def _inside(self, report: DependencyReport, relative: str, scan: TargetScan) -> DependencyReport:
        """A reference to a part of the target: its verdict comes from the target's own findings there."""
        findings = self.policy.apply_suppressions([f for f in scan.findings if _at_or_below(f.location, relative)])
        complete = not any(f.incomplete for f in findings)
        report.resolved = True
        report.findings = findings
        report.verdict = self.policy.decide(findings, complete, [])
        return replace(report, resolved_to=report.resolved_to or f"{relative} (part of this model)")


def _at_or_below(location: str, relative: str) -> bool:
    if location == relative:
        return True
    return location.startswith(relative) and location[len(relative)] in _LOCATION_SEPARATORS


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second
