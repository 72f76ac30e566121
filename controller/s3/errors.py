"""Reading botocore errors: the S3 error code, the HTTP status, one line for a person.

The one place that knows the shape of ``ClientError.response``; every S3 module asks here.
botocore is imported only when an error is examined (so importing this module costs nothing).
"""

from __future__ import annotations


def _client_error(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError)


def error_code(exc: BaseException) -> str:
    """The S3 error code (``NoSuchKey``, ``AccessDenied``, ``404``...), or "" for other failures."""
    if _client_error(exc):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a ``ClientError``, when the response carried one."""
    if _client_error(exc):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def describe(exc: BaseException) -> str:
    """One line for a person: ``AccessDenied (403): Access Denied``."""
    if _client_error(exc):
        message = str(exc.response.get("Error", {}).get("Message", ""))
        return f"{error_code(exc) or 'error'} ({http_status(exc) or '?'}): {message}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"
