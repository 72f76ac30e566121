"""Verdict reports a person can open: the JSON document, where it is kept, its HTML page and the HTTP routes."""

from .document import build_document
from .service import ReportKeeper, local_fallback
from .store import LocalReportStore, ReportUnavailable, S3ReportStore

__all__ = ["LocalReportStore", "ReportKeeper", "ReportUnavailable", "S3ReportStore", "build_document", "local_fallback"]
