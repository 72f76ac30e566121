"""Secrets and network indicators in the strings analyzers extract (docs/secrets.md).

Analyzers hand every string they extract to ``ScanContext.observe_text``; ``detect`` finds
credentials (detect-secrets plus the ML kinds in ``plugins``) and the network locations loaders
would contact, and never lets a secret value into a report.
"""

from .detect import RULES, SECRET_FIELD, find_secrets, inspect_document, inspect_value, redact

__all__ = ["RULES", "SECRET_FIELD", "find_secrets", "inspect_document", "inspect_value", "redact"]
