"""ML-specific credential kinds, written as detect-secrets plugins (the library has no detector for them).

Each is a ``RegexBasedDetector``: a ``secret_type`` and the patterns of its tokens, as the services
document them. Keys without a recognisable shape (a bare 40-hex W&B key) are matched only next to
their variable name, so model hashes and commit ids stay quiet.
"""

from __future__ import annotations

import re

from detect_secrets.plugins.base import RegexBasedDetector


class HuggingFaceTokenDetector(RegexBasedDetector):
    """Hugging Face user and organisation access tokens (``hf_`` + 34 or more letters)."""

    secret_type = "Hugging Face Token"
    denylist = [re.compile(r"\b(hf_[A-Za-z0-9]{34,40})\b"), re.compile(r"\b(api_org_[A-Za-z0-9]{34})\b")]


class WandbKeyDetector(RegexBasedDetector):
    """Weights & Biases API keys: 40 hex characters (``local-`` prefixed for self-hosted), next to their name."""

    secret_type = "Weights & Biases API Key"
    denylist = [
        re.compile(r"(?i)(?:wandb|WANDB_API_KEY|wandb_api_key)[\"'\s:=\]]{1,8}((?:local-)?[0-9a-f]{40})\b"),
        re.compile(r"(?i)api\.wandb\.ai[^\n]{0,40}?\b([0-9a-f]{40})\b"),
    ]


class DatabricksTokenDetector(RegexBasedDetector):
    """Databricks personal access tokens (``dapi`` + 32 hex, optional ``-N``); MLflow on Databricks uses them."""

    secret_type = "Databricks Token"
    denylist = [re.compile(r"\b(dapi[0-9a-f]{32}(?:-\d)?)\b")]


class MlflowCredentialDetector(RegexBasedDetector):
    """MLflow tracking credentials given as their environment variables' values."""

    secret_type = "MLflow Tracking Credential"
    denylist = [
        re.compile(r"(?:MLFLOW_TRACKING_TOKEN|MLFLOW_TRACKING_PASSWORD)[\"'\s:=]{1,8}([^\s\"']{8,})"),
        re.compile(r"(?:DATABRICKS_TOKEN)[\"'\s:=]{1,8}([^\s\"']{8,})"),
    ]


class OpenAIStyleKeyDetector(RegexBasedDetector):
    """OpenAI-style API keys of the current shapes (``sk-proj-``, ``sk-svcacct-``, ``sk-admin-``), which
    detect-secrets' OpenAI plugin (legacy ``T3BlbkFJ`` keys only) misses; also Anthropic ``sk-ant-`` keys."""

    secret_type = "OpenAI-style API Key"
    denylist = [
        re.compile(r"\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,})"),
        re.compile(r"\b(sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{40,})"),
    ]


ML_PLUGINS = (
    HuggingFaceTokenDetector,
    WandbKeyDetector,
    DatabricksTokenDetector,
    MlflowCredentialDetector,
    OpenAIStyleKeyDetector,
)
