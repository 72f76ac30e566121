"""``mlgate scan hf://org/name[@revision]``: resolved offline from the hub cache, the same verdict as the folder."""

from __future__ import annotations

import json

from deps_helpers import CLEAN_BASE_COMMIT, HUB

from mlgate.controller.cli.main import main


def _scan(capsys, *targets: str) -> tuple[int, dict, str]:
    code = main(["scan", "--format", "json", "--no-progress", *targets])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def test_hub_references_scan_like_the_snapshot_folders(acme_hub, capsys):
    refs = {
        "hf://acme/pickled-base": ("acme--pickled-base", "quarantined"),
        "hf://acme/clean-base": ("acme--clean-base", "approved"),
        f"hf://acme/clean-base@{CLEAN_BASE_COMMIT}": ("acme--clean-base", "approved"),
        "hf://acme/clean-base@main": ("acme--clean-base", "approved"),
    }
    code, doc, err = _scan(capsys, *refs)
    assert code == 1, err
    by_target = {t["target"]: t for t in doc["targets"]}
    for ref, (folder, expected) in refs.items():
        _, local_doc, _ = _scan(capsys, str(HUB / folder))
        (local,) = local_doc["targets"]
        assert by_target[ref]["verdict"] == local["verdict"] == expected, ref
        assert by_target[ref]["digest"] == local["digest"], ref
        assert sorted(f["rule"] for f in by_target[ref]["findings"]) == sorted(f["rule"] for f in local["findings"])


def test_hub_reference_not_in_the_cache_is_one_line(acme_hub, capsys):
    code, _, err = _scan(capsys, "hf://acme/never-downloaded")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("mlgate: error: hf://acme/never-downloaded: acme/never-downloaded@main is not in the")
    code, _, err = _scan(capsys, "hf://acme/clean-base@" + "f" * 40)
    assert code == 2 and "is not in the Hugging Face cache" in err
