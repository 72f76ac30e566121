"""ML-specific credential kinds, written as detect-secrets plugins (the library has no detector for them).

Each is a ``RegexBasedDetector``: a ``secret_type`` and the patterns of its tokens, as the services
document them (written in ``shapes.ML_SHAPES``, which the pre-check reads without detect-secrets).
Keys without a recognisable shape (a bare 40-hex W&B key) are matched only next to their variable
name, so model hashes and commit ids stay quiet.
"""

from __future__ import annotations

from detect_secrets.plugins.base import RegexBasedDetector

from .shapes import ML_SHAPES, compiled


class HuggingFaceTokenDetector(RegexBasedDetector):
    """Hugging Face user and organisation access tokens (``hf_`` + 34 or more letters)."""

    secret_type = "Hugging Face Token"
    denylist = compiled(ML_SHAPES["HuggingFaceTokenDetector"])


class WandbKeyDetector(RegexBasedDetector):
    """Weights & Biases API keys: 40 hex characters (``local-`` prefixed for self-hosted), next to their name."""

    secret_type = "Weights & Biases API Key"
    denylist = compiled(ML_SHAPES["WandbKeyDetector"])


class DatabricksTokenDetector(RegexBasedDetector):
    """Databricks personal access tokens (``dapi`` + 32 hex, optional ``-N``); MLflow on Databricks uses them."""

    secret_type = "Databricks Token"
    denylist = compiled(ML_SHAPES["DatabricksTokenDetector"])


class MlflowCredentialDetector(RegexBasedDetector):
    """MLflow tracking credentials given as their environment variables' values."""

    secret_type = "MLflow Tracking Credential"
    denylist = compiled(ML_SHAPES["MlflowCredentialDetector"])


class OpenAIStyleKeyDetector(RegexBasedDetector):
    """OpenAI-style API keys of the current shapes (``sk-proj-``, ``sk-svcacct-``, ``sk-admin-``), which
    detect-secrets' OpenAI plugin (legacy ``T3BlbkFJ`` keys only) misses; also Anthropic ``sk-ant-`` keys."""

    secret_type = "OpenAI-style API Key"
    denylist = compiled(ML_SHAPES["OpenAIStyleKeyDetector"])


ML_PLUGINS = (
    HuggingFaceTokenDetector,
    WandbKeyDetector,
    DatabricksTokenDetector,
    MlflowCredentialDetector,
    OpenAIStyleKeyDetector,
)
