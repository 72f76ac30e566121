"""The analyzer contract and the machinery shared by every analyzer.

An analyzer is one function from an artifact to findings, registered for a content kind::

    from ..core import Artifact, Finding, Kind, Rule, ScanContext, Severity, register

    RULE = Rule("MLG-XYZ-001", Severity.HIGH, "What is wrong, for a security engineer", "xyz")

    @register(Kind.PICKLE, "xyz")
    def analyze(artifact: Artifact, ctx: ScanContext) -> Iterable[Finding]: ...

``Malformed`` raised by an analyzer makes the scan incomplete (fail closed);
``ctx.walk(child)`` recurses into a member. Modules: ``findings`` (Finding,
Rule, Severity, the rule catalogue), ``artifact`` (named byte streams),
``kinds`` (content sniffing), ``walker`` (visit, dispatch, recurse, budgets),
``budget``, ``policy``, ``references``, ``report``, ``digest``, ``registry``.
"""

from .artifact import Artifact
from .findings import Finding, Rule, Severity
from .kinds import Kind
from .registry import register
from .walker import Malformed, ScanContext

__all__ = ["Artifact", "Finding", "Kind", "Malformed", "Rule", "ScanContext", "Severity", "register"]
