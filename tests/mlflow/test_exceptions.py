"""Reviewed exceptions against a real MLflow server: signed, bound to the digest, honoured by every layer.

The commands a reviewer runs are the ones the report itself prints for each finding (``accept_with``).
"""

from __future__ import annotations

import json
import shlex
import time
import urllib.error
import urllib.request

import pytest
from helpers_mlflow import CLEAN_FILES, SIGNING_KEY, malicious_dir, metric, register, wait_for

from mlgate.controller.cli.main import main
from mlgate.controller.verdicts.tags import check_verdict

pytestmark = pytest.mark.integration

KEY = SIGNING_KEY.encode()


def _signed(client, name: str, version: str):
    return check_verdict(KEY, name, version, client.get_model_version(name, version).tags).signed


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _env(monkeypatch, url: str, tmp_path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLGATE_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setenv("MLGATE_HOME", str(tmp_path / "cli-state"))
    monkeypatch.delenv("MLGATE_CONTROLLER_TOKEN", raising=False)


def _report(capsys, ref: str) -> dict:
    code, out, err = _cli(capsys, "report", ref, "--format", "json")
    assert code in (0, 1), err
    return json.loads(out)


def _accept_all(capsys, document: dict, reviewer: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Run the report's own ``accept_with`` command for every active finding at or above high."""
    ran = []
    for finding in document["report"]["findings"]:
        if finding.get("suppressed") or finding["severity"] not in ("critical", "high"):
            continue
        argv = shlex.split(finding["accept_with"])
        assert argv[:3] == ["mlgate", "exception", "add"]
        argv = [reviewer if a == "$USER" else "reviewed: benign test payload" if a == "..." else a for a in argv[1:]]
        code, out, err = _cli(capsys, *argv, *extra)
        assert code in (0, 1), err
        ran.append(out)
    return ran


def test_exception_approves_then_stops_applying_when_the_artifact_changes(
    plain_server, make_controller, prefix, tmp_path, capsys, monkeypatch
):
    client = plain_server.client()
    name = f"{prefix}triaged"
    version = register(client, name, malicious_dir(), tmp_path)
    controller = make_controller(plain_server.url)
    wait_for(lambda: _signed(client, name, version), what="first verdict")
    assert _signed(client, name, version).verdict.value == "quarantined"
    _env(monkeypatch, plain_server.url, tmp_path)
    ref = f"models:/{name}/{version}"

    before = _report(capsys, ref)
    assert before["verdict"] == "quarantined" and before["exceptions"] == []
    used_before = metric("mlgate_exceptions_applied_total", source="mlflow")
    outputs = _accept_all(capsys, before, "alice")
    assert outputs and f"{ref}: approved with exception(s)" in outputs[-1]

    signed = _signed(client, name, version)
    assert signed.approved and signed.exceptions
    assert metric("mlgate_exceptions_applied_total", source="mlflow") > used_before
    after = _report(capsys, ref)
    assert after["verdict"] == "approved" and after["live"]["state"] == "approved"
    assert {e["status"] for e in after["exceptions"]} == {"valid"}
    assert {e["reviewer"] for e in after["exceptions"]} == {"alice"}
    excepted = [f for f in after["report"]["findings"] if (f.get("suppressed") or "").startswith("exception ")]
    assert excepted and all("alice" in f["suppressed"] for f in excepted)
    code, page, _ = _cli(capsys, "report", ref, "--format", "html")
    assert code == 0 and 'id="verdict" class="badge approved">approved<' in page
    table = page.split('id="exceptions"', 1)[1].split("</table>", 1)[0]
    for exc in after["exceptions"]:
        assert f"<code>{exc['id']}</code>" in table and "alice" in table and "valid" in table
    assert page.count("accepted: exception ") == len(excepted)

    # mlgate check honours it (and counts the use); the running controller leaves it alone.
    checks = metric("mlgate_exceptions_applied_total", source="check")
    code, out, _ = _cli(capsys, "check", ref)
    assert code == 0 and "approved with reviewed exception(s) " in out
    assert metric("mlgate_exceptions_applied_total", source="check") > checks
    time.sleep(3)  # a few reconcile passes (poll 0.5 s, full resync 2 s)
    assert _signed(client, name, version).approved

    # The artifact changes (same file name, other payload): the exception is bound to the old digest.
    # (A running controller would notice the changed listing itself and rescan; this test scans by hand.)
    controller.runtime.stop()
    run_id = client.get_model_version(name, version).run_id
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "model.pkl").write_bytes((malicious_dir() / "model.pkl").read_bytes() + b"\n")
    client.log_artifact(run_id, str(changed / "model.pkl"), "model")
    from mlgate.controller.mlflow.source import SOURCE, version_key
    from mlgate.controller.runtime.interface import ScanRequest

    request = ScanRequest(SOURCE, version_key(name, version), "verify", force=True)
    scanned = controller.mlflow.scan(request)
    assert scanned is not None
    controller.mlflow.record(request, scanned)
    signed = _signed(client, name, version)
    assert signed.verdict.value == "quarantined" and signed.exceptions == ()
    stale = _report(capsys, ref)
    assert {e["status"] for e in stale["exceptions"]} == {"other-digest"}
    assert not any((f.get("suppressed") or "").startswith("exception ") for f in stale["report"]["findings"])
    code, out, _ = _cli(capsys, "check", ref)
    assert code == 1


def test_forged_and_copied_exceptions_are_ignored(plain_server, make_controller, prefix, tmp_path, capsys, monkeypatch):
    client = plain_server.client()
    name = f"{prefix}forged"
    first = register(client, name, malicious_dir(), tmp_path)
    second = register(client, name, malicious_dir(), tmp_path)  # same content: the same digest
    controller = make_controller(plain_server.url)
    for v in (first, second):
        wait_for(lambda v=v: _signed(client, name, v), what="verdicts")
    _env(monkeypatch, plain_server.url, tmp_path)
    doc = _report(capsys, f"models:/{name}/{first}")
    _accept_all(capsys, doc, "bob")
    assert _signed(client, name, first).approved

    tags = client.get_model_version(name, first).tags
    exception_tags = {k: v for k, v in tags.items() if k.startswith("mlgate.exception.")}
    assert exception_tags
    # Without the plugin anyone can write tags: copy the valid exceptions to version 2 (same digest),
    # and forge one on version 2 with a signature made with another key.
    from mlgate.controller.verdicts.exceptions import decode, new_exception

    for key, value in exception_tags.items():
        client.set_model_version_tag(name, second, key, value)
    template = decode(next(iter(exception_tags.values())))
    forged = new_exception(
        b"not-the-controller-key-0123456789", name, second, template.digest, template.rule, "*", "trust me", "mallory"
    )
    client.set_model_version_tag(name, second, forged.tag, forged.encode())

    from mlgate.controller.mlflow.source import SOURCE, version_key
    from mlgate.controller.runtime.interface import ScanRequest

    request = ScanRequest(SOURCE, version_key(name, second), "verify", force=True)
    scanned = controller.mlflow.scan(request)
    if scanned is not None:
        controller.mlflow.record(request, scanned)
    signed = _signed(client, name, second)
    assert signed.verdict.value == "quarantined" and signed.exceptions == ()
    code, out, _ = _cli(capsys, "exception", "list", f"models:/{name}/{second}", "--format", "json")
    statuses = {e["tag"]: e["status"] for e in json.loads(out)["exceptions"]}
    assert set(statuses.values()) == {"bad-signature"} and forged.tag in statuses

    # A forged "exceptions" list on version 2's verdict breaks its signature: no verdict at all.
    ids = ",".join(sorted(k.rpartition(".")[2] for k in exception_tags))
    client.set_model_version_tag(name, second, "mlgate.exceptions", ids)
    client.set_model_version_tag(name, second, "mlgate.verdict", "approved")
    assert _signed(client, name, second) is None
    code, _, _ = _cli(capsys, "check", f"models:/{name}/{second}")
    assert code == 1


def _rest(base: str, path: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow{path}",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_gate_plugin_takes_exceptions_only_from_the_controller_path_and_honours_them(
    gated_server, make_controller, prefix, tmp_path, capsys, monkeypatch
):
    from mlgate.controller.admission.verdict_lookup import RegistryVerdicts

    client = gated_server.client()
    name = f"{prefix}gated-exc"
    version = register(client, name, malicious_dir(), tmp_path)
    clean = register(client, f"{prefix}gated-clean", CLEAN_FILES, tmp_path)
    make_controller(gated_server.url)
    wait_for(lambda: _signed(client, name, version), what="verdict")
    wait_for(lambda: _signed(client, f"{prefix}gated-clean", clean), what="clean verdict")
    base = gated_server.url

    # Anyone without the controller token: refused, whatever the value.
    tags = client.get_model_version(name, version).tags
    forged = {"id": "0badc0de", "rule": "MLG-PKL-001", "location": "*", "digest": tags["mlgate.digest"]}
    for key in ("mlgate.exception.0badc0de", "mlgate.exceptions"):
        status, body = _rest(
            base, "/model-versions/set-tag", {"name": name, "version": version, "key": key, "value": json.dumps(forged)}
        )
        assert status == 403 and "reserved for the mlgate controller" in body["message"], key

    # The controller's CLI path with the key (it presents the token derived from it): accepted.
    _env(monkeypatch, base, tmp_path)
    doc = _report(capsys, f"models:/{name}/{version}")
    _accept_all(capsys, doc, "carol")
    assert _signed(client, name, version).approved

    # The plugin honours the approval that rests on the exception: the alias may now point at it.
    status, body = _rest(base, "/registered-models/alias", {"name": name, "alias": "champion", "version": version})
    assert status == 200, body
    lookup = RegistryVerdicts(client, KEY)
    admitted = metric("mlgate_exceptions_applied_total", source="admission")
    assert lookup.registry_version(name, version).approved
    assert metric("mlgate_exceptions_applied_total", source="admission") > admitted

    # Revoked (tag only, nobody decided again yet): every layer stops trusting the approval at once.
    code, out, _ = _cli(capsys, "exception", "list", f"models:/{name}/{version}", "--format", "json")
    exc_id = json.loads(out)["exceptions"][0]["id"]
    code, _, err = _cli(
        capsys, "exception", "revoke", f"models:/{name}/{version}", exc_id, "--reviewer", "dave", "--no-rescan"
    )
    assert code == 0, err
    approval = lookup.registry_version(name, version)
    assert not approval.approved and f"exception {exc_id}, which is revoked" in approval.reason
    code, out, _ = _cli(capsys, "check", f"models:/{name}/{version}")
    assert code == 1 and "revoked" in out
    status, body = _rest(base, "/registered-models/alias", {"name": name, "alias": "prod", "version": version})
    assert status == 403 and "revoked" in body["message"]
