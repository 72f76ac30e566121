"""What one version costs the MLflow server, and the order guarantees the cheaper path keeps.

Against a real MLflow server (proxied artifacts): every HTTP request the controller makes is
counted by kind while it scans and records a version. One download URI, two listings (before and
after the read), one read per small artifact (hashed from the bytes the scan read), one write per
verdict tag and no registered-model lookups (MlflowClient's per-call prompt check); the signature
write starts only after every other tag write finished. Plus, without a server: a failed tag write
means no signature at all, and the echo filter expires entries oldest first.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from helpers_mlflow import CLEAN_FILES, SIGNING_KEY, register, signed_tags, wait_for

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.controller.config.settings import ControllerConfig, MLflowConfig
from mlgate.controller.mlflow.source import SOURCE, MLflowSource, version_key
from mlgate.controller.runtime.interface import Scanned, ScanRequest, SourceUnavailable
from mlgate.controller.scanning import scan_target
from mlgate.controller.verdicts.tags import SIGNATURE, check_verdict

KEY = SIGNING_KEY.encode()


class Recorder:
    """Every request this process makes to ``base``: (kind, path, json body, start, end), in order of ending."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.calls: list[tuple[str, str, dict[str, Any], float, float]] = []
        self.lock = threading.Lock()

    def __enter__(self) -> Recorder:
        original = requests.Session.request
        recorder = self

        def request(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return original(session, method, url, *args, **kwargs)
            finally:
                if url.startswith(recorder.base):
                    path = unquote(urlsplit(url).path)
                    body = kwargs.get("json") if isinstance(kwargs.get("json"), dict) else {}
                    kind = f"{method.upper()} {path}"
                    if "/mlflow-artifacts/artifacts/" in path and method.upper() == "GET":
                        kind = "read " + ("range" if "Range" in (kwargs.get("headers") or {}) else "whole")
                    with recorder.lock:
                        recorder.calls.append((kind, path, body, started, time.monotonic()))

        self._original = original
        requests.Session.request = request  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        requests.Session.request = self._original  # type: ignore[method-assign]

    def count(self, needle: str) -> int:
        return sum(1 for kind, *_ in self.calls if needle in kind)

    def kinds(self) -> collections.Counter[str]:
        return collections.Counter(kind for kind, *_ in self.calls)


def process(controller: Any, name: str, version: str) -> None:
    assert controller.runtime.process(ScanRequest(SOURCE, version_key(name, version), "test"))


@pytest.mark.integration
def test_one_version_costs_few_requests_and_the_signature_comes_last(
    plain_server, make_controller, prefix, tmp_path
) -> None:
    client = plain_server.client()
    name = f"{prefix}budget"
    first = register(client, name, CLEAN_FILES, tmp_path)
    source_uri = client.get_model_version(name, first).source
    second = str(
        client.create_model_version(name, source_uri, run_id=client.get_model_version(name, first).run_id).version
    )
    controller = make_controller(plain_server.url, start=False)

    with Recorder(plain_server.url) as rec:
        process(controller, name, first)
    kinds = rec.kinds()
    tags = signed_tags(client, name, first)
    assert tags is not None and tags["mlgate.verdict"] == "approved"
    written = [body.get("key") for kind, _, body, *_ in rec.calls if kind.endswith("/model-versions/set-tag")]
    assert sorted(written) == sorted(k for k in tags if k.startswith("mlgate.")), kinds  # one write per tag
    assert rec.count("/registered-models/get") == 0, kinds  # no prompt lookup per call
    assert rec.count("/model-versions/get-download-uri") == 1, kinds
    assert kinds["GET /api/2.0/mlflow-artifacts/artifacts"] == 2, kinds  # before and after the read
    assert rec.count("read whole") == 0, kinds  # small files: hashed from the bytes the scan read
    assert rec.count("read range") == len(CLEAN_FILES), kinds
    assert rec.count("/runs/get") <= 1, kinds
    # The signature write starts after every other tag write has finished.
    ends = [end for kind, _, body, _, end in rec.calls if kind.endswith("set-tag") and body.get("key") != SIGNATURE]
    (signature_start,) = [
        s for kind, _, body, s, _ in rec.calls if kind.endswith("set-tag") and body["key"] == SIGNATURE
    ]
    assert signature_start >= max(ends)

    with Recorder(plain_server.url) as rec:  # a second version of the same run: its root is known
        process(controller, name, second)
    assert signed_tags(client, name, second) is not None
    assert rec.count("/runs/get") == 0, rec.kinds()


@pytest.mark.integration
def test_a_shared_location_is_listed_once_per_pass_and_a_change_still_invalidates_every_version(
    plain_server, make_controller, prefix, tmp_path
) -> None:
    client = plain_server.client()
    name = f"{prefix}shared"
    first = register(client, name, CLEAN_FILES, tmp_path)
    mv = client.get_model_version(name, first)
    versions = [first] + [str(client.create_model_version(name, mv.source, run_id=mv.run_id).version) for _ in range(2)]
    controller = make_controller(plain_server.url, start=False)
    for version in versions:
        process(controller, name, version)
    source = controller.mlflow

    with Recorder(plain_server.url) as rec:
        assert source.check_listings() == []
    assert rec.kinds()["GET /api/2.0/mlflow-artifacts/artifacts"] == 1, rec.kinds()
    assert rec.count("/get-download-uri") == 0, rec.kinds()  # known since the scan

    uri = client.get_model_version_download_uri(name, first)
    folder = Path(plain_server.log.parent / "artifacts" / uri.removeprefix("mlflow-artifacts:/"))
    (folder / "extra.txt").write_bytes(b"added after the scan\n")
    with Recorder(plain_server.url) as rec:
        requests_ = source.check_listings()
    assert sorted(r.key[2] for r in requests_) == sorted(versions)
    assert rec.kinds()["GET /api/2.0/mlflow-artifacts/artifacts"] == 1, rec.kinds()
    for version in versions:
        tags = client.get_model_version(name, version).tags
        assert check_verdict(KEY, name, version, tags).signed is None  # signature deleted on every one
    controller.runtime.start()
    for version in versions:  # rescanned with the new file
        wait_for(lambda v=version: signed_tags(client, name, v), what=f"rescan of {version}")


@pytest.mark.integration
def test_a_version_number_reused_after_the_model_is_registered_again_is_listed_where_it_now_points(
    plain_server, make_controller, prefix, tmp_path
) -> None:
    """Copied verdict tags on a re-created model's version 1 are checked against its new artifacts."""
    client = plain_server.client()
    name = f"{prefix}again"
    version = register(client, name, CLEAN_FILES, tmp_path)
    controller = make_controller(plain_server.url, start=False)
    process(controller, name, version)
    old = {k: v for k, v in client.get_model_version(name, version).tags.items() if k.startswith("mlgate.")}
    assert check_verdict(KEY, name, version, old).signed is not None
    client.delete_registered_model(name)
    again = register(client, name, {**CLEAN_FILES, "payload.txt": b"not what was scanned\n"}, tmp_path)
    assert again == version
    for key, value in old.items():
        client.set_model_version_tag(name, again, key, value)
    assert check_verdict(KEY, name, again, client.get_model_version(name, again).tags).signed is not None

    requests_ = controller.mlflow.reconcile_once()
    assert version_key(name, again) in [r.key for r in requests_]
    assert check_verdict(KEY, name, again, client.get_model_version(name, again).tags).signed is None


class FakeRegistry:
    """A registry client whose write of ``fail`` breaks with a server error."""

    def __init__(self, fail: str | None) -> None:
        from mlflow.exceptions import RestException

        self.fail = fail
        self.written: list[str] = []
        self.lock = threading.Lock()
        self.error = RestException({"error_code": "INTERNAL_ERROR", "message": "store down"})

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        time.sleep(0.01)
        if key == self.fail:
            raise self.error
        with self.lock:
            self.written.append(key)

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        with self.lock:
            self.written.append(f"-{key}")


def _source(client: Any, tmp_path: Path, clock: Any = time.time) -> MLflowSource:
    config = ControllerConfig(state_dir=str(tmp_path / "state"), signing_key=SIGNING_KEY, mlflow=MLflowConfig())
    return MLflowSource(config, KEY, Policy(), client=client, clock=clock)


def _approved(tmp_path: Path) -> Scanned:
    folder = tmp_path / "model"
    folder.mkdir()
    for rel, data in CLEAN_FILES.items():
        (folder / rel).write_bytes(data)
    report = scan_target(folder, Policy())
    assert report.verdict is Verdict.APPROVED
    return Scanned(report, None)


@pytest.mark.parametrize("fail", ["mlgate.digest", "mlgate.findings"])
def test_no_signature_when_another_tag_write_fails(tmp_path: Path, fail: str) -> None:
    client = FakeRegistry(fail)
    source = _source(client, tmp_path)
    with pytest.raises(SourceUnavailable):
        source.record(ScanRequest(SOURCE, version_key("m", "1")), _approved(tmp_path))
    assert SIGNATURE not in client.written
    assert fail not in client.written


def test_signature_is_written_last(tmp_path: Path) -> None:
    client = FakeRegistry(None)
    source = _source(client, tmp_path)
    source.record(ScanRequest(SOURCE, version_key("m", "1")), _approved(tmp_path))
    assert client.written[-1] == SIGNATURE
    assert {"mlgate.verdict", "mlgate.digest", "mlgate.scanned_at", "mlgate.scanner", "mlgate.findings"} < set(
        client.written
    )
    assert source.is_own_write("m", "1", "mlgate.verdict", "approved")
    assert not source.is_own_write("m", "1", "mlgate.verdict", "quarantined")


def test_own_writes_expire_oldest_first_and_a_rewrite_renews(tmp_path: Path) -> None:
    now = [0.0]
    source = _source(FakeRegistry(None), tmp_path, clock=lambda: now[0])
    source._remember_write("m", "1", "mlgate.verdict", "approved")
    now[0] = 100.0
    source._remember_write("m", "2", "mlgate.verdict", "approved")
    now[0] = 650.0
    source._remember_write("m", "1", "mlgate.verdict", "quarantined")  # renewed, moved behind version 2
    now[0] = 705.0
    assert not source.is_own_write("m", "2", "mlgate.verdict", "approved")  # written 605 s ago
    assert source.is_own_write("m", "1", "mlgate.verdict", "quarantined")
    assert not source.is_own_write("m", "1", "mlgate.verdict", "approved")  # the older value is no echo
    now[0] = 1300.0
    assert not source.is_own_write("m", "1", "mlgate.verdict", "quarantined")


def test_small_artifacts_hash_from_the_scanned_blocks(tmp_path: Path) -> None:
    """The cached-block hash equals sha256 of the content; a file not read whole is not hashed from cache."""
    from mlgate.controller.mlflow.stores import _cached_sha256
    from mlgate.controller.s3.reader import ReadSession, S3Object

    data = bytes(range(256)) * 200  # 51,200 bytes: four 16 KiB blocks
    session = ReadSession()

    class Obj(S3Object):
        def _get_range(self, start: int, length: int) -> bytes:
            return data[start : start + length]

    obj = Obj(None, "b", "k", len(data), "etag", session)
    assert obj.read_at(0, 10, 10) == data[:10]
    assert _cached_sha256(obj) is None  # only the first block was read
    assert obj.read_at(0, len(data), len(data)) == data
    assert _cached_sha256(obj) == hashlib.sha256(data).hexdigest()
    shorter = Obj(None, "b", "k2", len(data) + 1, "etag", session)  # listed one byte longer than its blocks
    shorter._id = obj._id
    assert _cached_sha256(shorter) is None
