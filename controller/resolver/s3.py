"""``s3://bucket/key`` references: one object, or every object under a prefix, copied to a temp folder.

boto3 reads the standard AWS environment (credentials, region) and the
endpoint from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (S3-compatible
stores, moto in tests). A key that is an object resolves to that object; any
other key is a folder prefix (``key/``). Copies are bounded (``max_bytes``,
``max_objects``) and object keys that would land outside the temporary folder
(``..``, absolute) make the reference unresolved instead of being written.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlgate.analyzers.core.budget import GiB
from mlgate.analyzers.core.references import Reference

from ..s3.errors import error_code
from ..s3.grouping import S3ObjectRef, list_objects
from .interface import Origin, Resolution, unresolved


class S3Resolver:
    """Copies the S3 object(s) a reference names into a temporary folder."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        max_bytes: int = 4 * GiB,
        max_objects: int = 20_000,
        client: Any = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.max_bytes = max_bytes
        self.max_objects = max_objects
        self._client = client

    def prepare(self) -> None:
        """Import boto3 and build the client ahead of the first reference (a scan still walking)."""
        self.client()

    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint_url)
        return self._client

    def locate(self, uri: str) -> tuple[str, str, list[S3ObjectRef]] | str:
        """``(bucket, prefix, objects)`` an ``s3://`` URI names (``prefix`` "" for a single object), or why not.

        The same lookup serves dependency copies (``resolve``) and in-place scans of a URI
        (``mlgate scan s3://...``): an object key names that object, any other key a folder prefix.
        """
        uri = uri.strip()
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket:
            return f"{uri} names no bucket"
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            objects, prefix = self._objects(self.client(), bucket, key)
        except (BotoCoreError, ClientError) as exc:
            return f"S3 could not list {uri}: {exc}"
        if not objects:
            return f"no object or prefix {uri} in S3"
        total = sum(o.size for o in objects)
        if len(objects) > self.max_objects or total > self.max_bytes:
            return f"{uri} holds {len(objects)} objects / {total} bytes, over mlgate's limits"
        return bucket, prefix, objects

    def resolve(self, reference: Reference, origin: Origin) -> Resolution:
        uri = reference.ref.strip()
        found = self.locate(uri)
        if isinstance(found, str):
            return unresolved(found)
        bucket, prefix, objects = found
        key = uri.removeprefix("s3://").partition("/")[2]
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        workdir = Path(tempfile.mkdtemp(prefix="mlgate-dep-"))
        try:
            target = self._download(client, bucket, prefix, objects, workdir)
        except (BotoCoreError, ClientError, OSError, ValueError) as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            return unresolved(f"S3 could not provide {uri}: {exc}")
        return Resolution(
            resolved=True,
            path=target,
            resolved_to=f"s3://{bucket}/{prefix or key}",
            identity=f"s3://{bucket}/{prefix or key}",
            cleanup=lambda: shutil.rmtree(workdir, ignore_errors=True),
        )

    def _objects(self, client: Any, bucket: str, key: str) -> tuple[list[S3ObjectRef], str]:
        """The objects to copy and the folder prefix they sit under ("" for a single object)."""
        if key and not key.endswith("/"):
            from botocore.exceptions import ClientError

            try:
                head = client.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
            else:
                return [S3ObjectRef(key, int(head.get("ContentLength", 0)), str(head.get("ETag", "")).strip('"'))], ""
        prefix = key.rstrip("/") + "/" if key else ""
        objects = []
        for obj in list_objects(client, bucket, prefix):
            if not obj.key.endswith("/"):
                objects.append(obj)
            if len(objects) > self.max_objects:
                break
        return objects, prefix

    def _download(self, client: Any, bucket: str, prefix: str, objects: list[S3ObjectRef], workdir: Path) -> Path:
        if not prefix:
            name = posixpath.basename(objects[0].key) or "object"
            client.download_file(bucket, objects[0].key, str(workdir / name))
            return workdir / name
        for obj in objects:
            relative = posixpath.normpath(obj.key[len(prefix) :])
            if relative.startswith(("../", "/")) or relative in ("..", "."):
                raise ValueError(f"object key {obj.key!r} would be written outside the copy folder")
            dest = workdir / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj.key, str(dest))
        return workdir
