"""Report pages rendered by a real headless Chromium: the demo registry's verdicts, and model text shown as text.

The controller runs in-process against its embedded registry (sqlite + local artifacts) seeded with
the demo models plus one model whose file name and pickle string are HTML/JavaScript. The report
pages are served by the controller's own HTTP server and loaded by Chromium (``--dump-dom``: the DOM
after parsing, so markup that got through unescaped would show up as elements).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from mlgate.analyzers.core.policy import Policy

pytestmark = pytest.mark.integration

CANARY = os.environ.get("MLGATE_CANARY_DIR", "/tmp/mlgate-canary")
SCRIPT = "<script>document.title='pwned'</script>"
FILE_NAME = "<img src=x onerror=document.title=1>.pkl"


def _xss_pickle() -> bytes:
    """A pickle calling os.system; if it ever ran it would only touch the canary (the rest is a shell comment)."""
    command = f"touch {CANARY}/report-xss #{SCRIPT}".encode()
    return b"\x80\x02cposix\nsystem\nq\x00X" + len(command).to_bytes(4, "little") + command + b"q\x01\x85q\x02Rq\x03."


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _dom(chromium: str, url: str, profile: Path) -> str:
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _element(dom: str, ident: str) -> str:
    """The markup of element #ident (first closing tag of its kind: for leaf elements and tables)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{ident}"[^>]*>(.*?)</\1>', dom, re.S)
    assert match, f"no element #{ident} in the DOM"
    return match.group(2)


def _section(dom: str, ident: str) -> str:
    """The markup from element #ident to the next section heading (for nested blocks)."""
    match = re.search(rf'\bid="{ident}"[^>]*>(.*?)(?:<h2|</body>)', dom, re.S)
    assert match, f"no element #{ident} in the DOM"
    return match.group(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The embedded demo registry after one reconcile pass, and the controller's report routes on a free port."""
    from mlgate.controller.cli.controller import build_controller
    from mlgate.controller.config.settings import load_config
    from mlgate.controller.mlflow.demo import EXPERIMENT, seed
    from mlgate.controller.runtime.http_server import HttpServer

    home = tmp_path_factory.mktemp("report-pages") / "mlgate-home"
    config = load_config(None, {"MLGATE_HOME": str(home)})
    key = config.key()
    controller = build_controller(config, key, Policy(), with_http=False)
    client = controller.mlflow.client
    seed(client, home / "artifacts")

    src = home / "xss-src"
    src.mkdir()
    (src / FILE_NAME).write_bytes(_xss_pickle())
    (src / "README.md").write_text("a model whose names are markup\n")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    run = client.create_run(experiment.experiment_id)
    client.log_artifacts(run.info.run_id, str(src), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("xss-model")
    client.create_model_version("xss-model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    assert controller.runtime.run_once(300), "reconcile pass did not finish"
    controller.runtime.stop()
    http = HttpServer(port=0, metrics=False)
    controller.reports.install(http)
    http.start()
    try:
        yield http.url, controller
    finally:
        http.stop()


def test_quarantined_demo_model_page_in_chromium(served, chromium, tmp_path):
    from mlgate.analyzers.core.findings import Severity
    from mlgate.controller.mlflow.demo import demo_model_dir
    from mlgate.controller.scanning import scan_target

    url, _ = served
    dom = _dom(chromium, f"{url}/reports/mlflow/demo-support-adapter/1", tmp_path / "profile")
    assert _text(_element(dom, "verdict")) == "quarantined"
    assert _text(_element(dom, "subject")) == "models:/demo-support-adapter/1"
    assert "dependency models:/demo-base-llm/1 is quarantined" in _text(_element(dom, "why"))

    chain = _text(_section(dom, "dependencies"))
    assert "quarantined mlflow models:/demo-base-llm/1" in chain
    base = scan_target(demo_model_dir("base-llm"), Policy())  # the base's own findings, scanned independently
    critical = [f for f in base.findings if f.severity is Severity.CRITICAL]
    assert critical
    for finding in critical:
        assert f"critical {finding.rule} at {finding.location}" in chain and finding.message in chain
    assert "<script" not in dom.lower()

    base_dom = _dom(chromium, f"{url}/reports/mlflow/demo-base-llm/1", tmp_path / "profile")
    assert _text(_element(base_dom, "verdict")) == "quarantined"
    table = re.search(r'<table class="findings" data-severity="critical">(.*?)</table>', base_dom, re.S)
    assert table, "no critical findings table"
    for finding in critical:
        assert finding.rule in _text(table.group(1)) and finding.message in _text(table.group(1))
    assert "mlgate exception add models:/demo-base-llm/1 --rule" in _text(table.group(1))


def test_markup_from_the_model_is_shown_as_text(served, chromium, tmp_path):
    url, _ = served
    dom = _dom(chromium, f"{url}/reports/mlflow/xss-model/1", tmp_path / "profile")
    assert _text(_element(dom, "verdict")) == "quarantined"
    lowered = dom.lower()
    assert "<script" not in lowered and "<img" not in lowered  # nothing from the model became an element
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title and "pwned" not in title.group(1) and title.group(1).strip() != "1"
    text = _text(dom)
    assert SCRIPT in text  # the pickle string, as characters on the page
    assert FILE_NAME in text  # the file name, as characters on the page
    assert "&lt;script&gt;" in dom and "&lt;img src=x" in dom


def test_index_filters_and_json(served, chromium, tmp_path):
    url, controller = served
    dom = _dom(chromium, f"{url}/reports?verdict=quarantined&source=mlflow", tmp_path / "profile")
    table = _text(_element(dom, "recent"))
    for name in ("demo-churn-pickle", "demo-base-llm", "demo-support-adapter", "xss-model"):
        assert f"models:/{name}/1" in table
    assert "demo-fraud-classifier" not in table
    approved = _text(_element(_dom(chromium, f"{url}/reports?verdict=approved", tmp_path / "p2"), "recent"))
    assert "models:/demo-fraud-classifier/1" in approved and "demo-churn-pickle" not in approved
    s3_only = _text(_element(_dom(chromium, f"{url}/reports?source=s3", tmp_path / "p3"), "recent"))
    assert "models:/" not in s3_only

    with urllib.request.urlopen(f"{url}/reports/mlflow/demo-support-adapter/1?format=json", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        document = json.load(resp)
    tags = controller.mlflow.client.get_model_version("demo-support-adapter", "1").tags
    assert document["verdict"] == tags["mlgate.verdict"] == "quarantined"
    assert document["report"]["digest"] == tags["mlgate.digest"]
    assert tags["mlgate.report"].startswith("runs:/") and " sha256:" in tags["mlgate.report"]
    (dep,) = document["report"]["dependencies"]
    assert (dep["ref"], dep["verdict"]) == ("models:/demo-base-llm/1", "quarantined")
    assert document["budgets"]["max_bytes"] > 0 and document["live"]["state"] == "quarantined"
