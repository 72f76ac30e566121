"""Dependencies end to end: references resolved (hub cache, local paths) and scanned with the same rules.

Every malicious fixture's payload sits in a dependency, never in the scanned
folder itself: the verdict must come from resolving and scanning it. Benign
twins must come out approved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deps_helpers import CLEAN_BASE_COMMIT, HUB, MODELS, commit_for, install_repo

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.references import Reference, RefKind
from mlgate.analyzers.core.report import DependencyReport
from mlgate.controller import scanning
from mlgate.controller.resolver import Origin, ResolverRegistry, default_resolver
from mlgate.controller.scanning import scan_target


def only(deps: list[DependencyReport], ref: str) -> DependencyReport:
    (dep,) = [d for d in deps if d.ref == ref]
    return dep


def test_hub_cache_layout_is_real(acme_hub):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(acme_hub)
    repos = {r.repo_id: r for r in info.repos}
    assert set(repos) == {"acme/pickled-base", "acme/clean-base", "acme/clean-looking-base", "acme/evil-code"}
    (revision,) = repos["acme/clean-base"].revisions
    assert revision.commit_hash == CLEAN_BASE_COMMIT and revision.refs == frozenset({"main"})
    assert {f.file_name for f in revision.files} == {"config.json", "model.safetensors"}


def test_adapter_on_pickled_base_is_quarantined_by_its_base(acme_hub, policy):
    report = scan_target(MODELS / "adapter-pickle-base", policy)
    assert report.verdict is Verdict.QUARANTINED
    assert [f.rule for f in report.findings] == ["MLG-DEP-001"]  # the adapter itself: only unpinned (low)
    dep = only(report.dependencies, "acme/pickled-base")
    assert (dep.kind, dep.resolved, dep.verdict) == ("hf", True, Verdict.QUARANTINED)
    snapshot = acme_hub / "models--acme--pickled-base" / "snapshots" / commit_for("acme/pickled-base")
    assert dep.resolved_to == str(snapshot)
    assert dep.digest.startswith("sha256:") and "not pinned" in dep.reason
    payload = [(f.rule, f.severity.label) for f in dep.findings if f.location.startswith("pytorch_model.bin!")]
    assert ("MLG-PKL-002", "critical") in payload, dep.findings  # os.system when the base is unpickled
    assert any("hf-pickled-base" in f.message for f in dep.findings)


def test_adapter_on_clean_base_is_approved(acme_hub, policy):
    report = scan_target(MODELS / "adapter-clean-base", policy)
    dep = only(report.dependencies, "acme/clean-base")
    assert (dep.resolved, dep.verdict, dep.revision) == (True, Verdict.APPROVED, CLEAN_BASE_COMMIT)
    assert dep.resolved_to.endswith(f"snapshots/{CLEAN_BASE_COMMIT}") and dep.reason == ""
    assert report.findings == [] and report.verdict is Verdict.APPROVED


def test_clean_looking_base_pulls_code_from_a_third_repo(acme_hub, policy):
    report = scan_target(MODELS / "adapter-remote-code-base", policy)
    assert report.verdict is Verdict.QUARANTINED
    base = only(report.dependencies, "acme/clean-looking-base")
    assert base.verdict is Verdict.QUARANTINED
    assert {f.rule for f in base.findings} == {"MLG-CODE-010", "MLG-DEP-001"}  # nothing high in the base itself
    code = only(base.dependencies, "acme/evil-code")
    assert (code.kind, code.location, code.verdict) == ("hf", "config.json#auto_map.AutoModel", Verdict.QUARANTINED)
    spawn = [f for f in code.findings if f.rule == "MLG-CODE-002"]
    assert [(f.location, f.severity.label) for f in spawn] == [("modeling_evil.py:7", "critical")]
    assert "when the module is imported" in spawn[0].message


def test_revision_pins_are_honoured(hub_cache, tmp_path, policy):
    old, new = "1" * 40, "2" * 40
    install_repo(hub_cache, "acme/base", HUB / "acme--clean-base", commit=old, branch="v1")
    install_repo(hub_cache, "acme/base", HUB / "acme--pickled-base", commit=new, branch="main")

    def adapter(revision: str | None) -> DependencyReport:
        folder = tmp_path / f"adapter-{revision}"
        folder.mkdir()
        (folder / "adapter_config.json").write_text(
            json.dumps({"peft_type": "LORA", "base_model_name_or_path": "acme/base", "revision": revision})
        )
        return only(scan_target(folder, policy).dependencies, "acme/base")

    pinned, tagged, unpinned = adapter(old), adapter("v1"), adapter(None)
    assert pinned.resolved_to.endswith(old) and pinned.verdict is Verdict.APPROVED
    assert tagged.resolved_to.endswith(old) and "'v1' resolved to commit" in tagged.reason
    assert unpinned.resolved_to.endswith(new) and unpinned.verdict is Verdict.QUARANTINED
    missing = adapter("3" * 40)
    assert not missing.resolved and missing.verdict is None
    assert "not in the Hugging Face cache" in missing.reason


def test_unresolvable_dependency_quarantines_unless_policy_approves(hub_cache, model_copy):
    adapter = model_copy("adapter-clean-base")  # acme/clean-base is not in this (empty) cache
    report = scan_target(adapter, Policy())
    dep = only(report.dependencies, "acme/clean-base")
    assert not dep.resolved and str(hub_cache) in dep.reason
    assert report.verdict is Verdict.QUARANTINED
    lenient = scan_target(adapter, Policy(quarantine_unresolved=False))
    assert lenient.verdict is Verdict.APPROVED
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize(
    ("fixture", "verdict", "expected"),
    [
        ("transformers-exec-b64", Verdict.QUARANTINED, {("MLG-CODE-003", "modeling_b64.py:20", "critical")}),
        ("transformers-plain", Verdict.APPROVED, set()),
        (
            "tokenizer-template-escape",
            Verdict.QUARANTINED,
            {
                ("MLG-TPL-001", "tokenizer_config.json#chat_template:1", "critical"),
                ("MLG-TPL-002", "tokenizer_config.json#chat_template:1", "critical"),
            },
        ),
        ("tokenizer-plain", Verdict.APPROVED, set()),
        ("st-modules-escape", Verdict.QUARANTINED, {("MLG-DEP-003", "modules.json#[1].path", "high")}),
        ("st-plain", Verdict.APPROVED, set()),
        ("mlflow-code-shell", Verdict.QUARANTINED, {("MLG-CODE-002", "code/shell_loader.py:4", "critical")}),
        ("mlflow-sklearn", Verdict.APPROVED, set()),
    ],
)
def test_fixture_verdicts(hub_cache, policy, fixture, verdict, expected):
    report = scan_target(MODELS / fixture, policy)
    high = {(f.rule, f.location, f.severity.label) for f in report.findings if f.severity.label in ("high", "critical")}
    assert high == expected
    assert report.verdict is verdict, [f.to_dict() for f in report.findings]


def test_local_code_dependencies_take_the_verdict_of_their_file(hub_cache, policy):
    report = scan_target(MODELS / "transformers-exec-b64", policy)
    deps = {d.ref: d for d in report.dependencies}
    assert set(deps) == {"configuration_b64.py", "modeling_b64.py"}
    assert deps["configuration_b64.py"].verdict is Verdict.APPROVED
    assert deps["modeling_b64.py"].verdict is Verdict.QUARANTINED
    assert deps["modeling_b64.py"].resolved_to == "modeling_b64.py (part of this model)"


def test_missing_auto_map_module_is_unresolved(tmp_path, hub_cache, policy):
    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_gone.GoneModel"}}))
    report = scan_target(tmp_path, policy)
    dep = only(report.dependencies, "modeling_gone.py")
    assert not dep.resolved and "not shipped with the model" in dep.reason
    assert report.verdict is Verdict.QUARANTINED


def test_local_paths(tmp_path, hub_cache, policy):
    model = tmp_path / "model"
    (model / "base").mkdir(parents=True)
    (model / "base" / "modeling.py").write_text("import os\nos.system('touch /tmp/mlgate-canary/local-base')\n")
    # each adapter sits in its own sub-folder: paths start from the folder of the file naming them
    for name, base in (("inside", "../base"), ("escape", "../../elsewhere"), ("absolute", "/opt/models/base")):
        (model / name).mkdir()
        (model / name / "adapter_config.json").write_text(
            json.dumps({"peft_type": "LORA", "base_model_name_or_path": base})
        )
    (tmp_path / "elsewhere").mkdir()
    deps = {d.location.split("/")[0]: d for d in scan_target(model, policy).dependencies}
    assert deps["inside"].resolved and deps["inside"].verdict is Verdict.QUARANTINED
    assert deps["inside"].resolved_to == "base (part of this model)"
    assert not deps["escape"].resolved and "outside the model folder" in deps["escape"].reason
    assert not deps["absolute"].resolved and "absolute path" in deps["absolute"].reason


def test_single_file_target_scans_its_sibling(tmp_path, policy):
    (tmp_path / "weights.py").write_text("import subprocess\nsubprocess.call(['id'])\n")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"\x08\x07")
    origin = Origin.for_path(target)
    res = default_resolver().resolve(Reference(RefKind.LOCAL, "weights.py", "model.onnx@12"), origin)
    assert res.resolved and res.inside_target is None and res.path == (tmp_path / "weights.py").resolve()


def _adapter_repo(root: Path, base: str) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": base, "revision": commit_for(base)})
    )
    return root


def test_cycles_end_and_depth_is_bounded(hub_cache, tmp_path, policy):
    install_repo(hub_cache, "acme/a", _adapter_repo(tmp_path / "a", "acme/b"), commit=commit_for("acme/a"))
    install_repo(hub_cache, "acme/b", _adapter_repo(tmp_path / "b", "acme/a"), commit=commit_for("acme/b"))
    report = scan_target(_adapter_repo(tmp_path / "top", "acme/a"), policy)
    a = only(report.dependencies, "acme/a")
    b = only(a.dependencies, "acme/b")
    back = only(b.dependencies, "acme/a")
    assert "cycle" in back.reason and back.dependencies == []
    assert report.verdict is Verdict.APPROVED

    chain = [f"acme/c{i}" for i in range(7)]
    for here, there in zip(chain[:-1], chain[1:], strict=True):
        install_repo(hub_cache, here, _adapter_repo(tmp_path / here, there), commit=commit_for(here))
    deep = scan_target(_adapter_repo(tmp_path / "deep", chain[0]), policy)
    level, depth = deep.dependencies[0], 1
    while level.dependencies:
        level, depth = level.dependencies[0], depth + 1
    assert depth == scanning.MAX_DEPENDENCY_DEPTH + 1  # MAX levels are followed, the next one is not
    assert not level.resolved and "deeper than" in level.reason
    assert deep.verdict is Verdict.QUARANTINED


def test_a_dependency_named_twice_is_scanned_once(acme_hub, tmp_path, policy, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "acme/clean-base", "revision": CLEAN_BASE_COMMIT})
    )
    (folder / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "P",
                "_diffusers_version": "0.42.1",
                "te": [None, None, {"repo": "acme/clean-base", "revision": CLEAN_BASE_COMMIT}],
            }
        )
    )
    scanned: list[str] = []
    real = scanning.scan_path

    def spy(path, *args, **kwargs):
        scanned.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(scanning, "scan_path", spy)
    report = scan_target(folder, policy)
    assert len(report.dependencies) == 2 and all(d.verdict is Verdict.APPROVED for d in report.dependencies)
    assert len(scanned) == 2  # the target and acme/clean-base once


def test_urls_are_never_fetched(tmp_path, hub_cache, policy):
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "https://models.example/base"})
    )
    dep = only(scan_target(tmp_path, policy).dependencies, "https://models.example/base")
    assert dep.kind == "url" and not dep.resolved and "never downloads" in dep.reason


def test_resolver_failures_are_unresolved_not_crashes(tmp_path, policy):
    class Broken:
        def resolve(self, reference, origin):
            raise RuntimeError("backend exploded")

    registry = ResolverRegistry({RefKind.HF: Broken()})
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "acme/x", "revision": "f" * 40})
    )
    report = scan_target(tmp_path, policy, resolver=registry)
    dep = only(report.dependencies, "acme/x")
    assert not dep.resolved and "backend exploded" in dep.reason and report.verdict is Verdict.QUARANTINED


def test_json_report_carries_the_dependency_chain(acme_hub, policy):
    report = scan_target(MODELS / "adapter-remote-code-base", policy).to_dict()
    (base,) = report["dependencies"]
    assert {"ref", "kind", "resolved", "verdict", "location", "resolved_to", "digest"} <= set(base)
    assert (base["ref"], base["kind"], base["verdict"]) == ("acme/clean-looking-base", "hf", "quarantined")
    (code,) = base["dependencies"]
    assert (code["ref"], code["verdict"]) == ("acme/evil-code", "quarantined")
    assert any(f["rule"] == "MLG-CODE-002" for f in code["findings"])


def test_cli_resolves_from_the_cache_and_says_when_it_cannot(acme_hub, tmp_path):
    env = {**os.environ, "HF_HUB_CACHE": str(acme_hub), "HF_HUB_OFFLINE": "0", "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "mlgate.controller", "scan", "--no-progress"]
    good = subprocess.run(
        [*cmd, "--format", "json", str(MODELS / "adapter-clean-base")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert good.returncode == 0, good.stderr
    (dep,) = json.loads(good.stdout)["targets"][0]["dependencies"]
    assert (dep["ref"], dep["resolved"], dep["verdict"]) == ("acme/clean-base", True, "approved")

    env["HF_HUB_CACHE"] = str(tmp_path / "empty-cache")
    bad = subprocess.run(
        [*cmd, str(MODELS / "adapter-clean-base")], capture_output=True, text=True, env=env, timeout=120
    )
    assert bad.returncode == 1
    line = next(line for line in bad.stdout.splitlines() if "acme/clean-base" in line)
    assert "unresolved" in line and "not in the Hugging Face cache" in line
