"""Secrets and network locations in binary model streams whose strings are stored verbatim.

Pickle streams (string constants and call arguments), ``saved_model.pb`` and
``keras_metadata.pb`` (protobuf string constants, asset names, function attributes) and ONNX
models (string attributes, metadata) keep their strings as plain bytes. The stream is read once,
up to ``MAX_BYTES`` (a pickle's tensors live in other members or after its STOP; an ONNX file
with inline weights is cut there), decoded as latin-1 so offsets equal byte offsets, and handed
to the same detectors as every other extracted string. Findings name ``file@offset``.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..core import Artifact, Finding, Kind, ScanContext, register
from ..core.artifact import read_exact

MAX_BYTES = 8 << 20
ANALYZER = "secrets"


@register(Kind.PICKLE, ANALYZER)
@register(Kind.SAVEDMODEL, ANALYZER)
@register(Kind.KERAS_METADATA, ANALYZER)
@register(Kind.ONNX, ANALYZER)
def analyze(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    with ctx.open(artifact) as stream:
        data = read_exact(stream, MAX_BYTES)
    ctx.observe_document(artifact.location, data.decode("latin-1"), reachable=True)
    return iter(())
