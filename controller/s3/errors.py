"""Reading botocore errors: the S3 error code, the HTTP status, one line for a person.

The one place that knows the shape of ``ClientError.response``; every S3 module asks here.
"""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(exc: BaseException) -> str:
    """The S3 error code (``NoSuchKey``, ``AccessDenied``, ``404``...), or "" for other failures."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a ``ClientError``, when the response carried one."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def describe(exc: BaseException) -> str:
    """One line for a person: ``AccessDenied (403): Access Denied``."""
    if isinstance(exc, ClientError):
        message = str(exc.response.get("Error", {}).get("Message", ""))
        return f"{error_code(exc) or 'error'} ({http_status(exc) or '?'}): {message}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"
