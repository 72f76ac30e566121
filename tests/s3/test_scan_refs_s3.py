"""``mlgate scan s3://...`` against moto: read in place with ranged GETs, the same verdict as the downloaded folder."""

from __future__ import annotations

import json
from pathlib import Path

from s3_helpers import evil_pickle, hf_config, model_card, safetensors_file

from mlgate.controller.cli.main import main


def _scan(capsys, *targets: str) -> tuple[int, dict, str]:
    code = main(["scan", "--format", "json", "--no-progress", *targets])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _download(s3, bucket: str, prefix: str, dest: Path) -> Path:
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", ()):
        path = dest / item["Key"][len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, item["Key"], str(path))
    return dest


def test_s3_prefixes_and_objects_scan_like_their_downloads(s3, bucket, moto_endpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    files = {
        "teams/bad/config.json": hf_config(),
        "teams/bad/pytorch_model.pkl": evil_pickle("scan-ref-s3"),
        "teams/good/config.json": hf_config(),
        "teams/good/model.safetensors": safetensors_file(1 << 16),
        "teams/good/README.md": model_card(),
        "single/model.pkl": evil_pickle("scan-ref-s3-single"),
    }
    for key, data in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    refs = {
        f"s3://{bucket}/teams/bad/": ("teams/bad/", "quarantined"),
        f"s3://{bucket}/teams/good/": ("teams/good/", "approved"),
        f"s3://{bucket}/teams/good": ("teams/good/", "approved"),  # not an object: a folder prefix
        f"s3://{bucket}/single/model.pkl": ("single/", "quarantined"),
    }
    code, doc, err = _scan(capsys, *refs)
    assert code == 1, err
    by_target = {t["target"]: t for t in doc["targets"]}
    for i, (ref, (prefix, expected)) in enumerate(refs.items()):
        folder = _download(s3, bucket, prefix, tmp_path / f"dl{i}")
        local_code, local_doc, _ = _scan(capsys, str(folder))
        (local,) = local_doc["targets"]
        remote = by_target[ref]
        assert remote["verdict"] == local["verdict"] == expected, ref
        remote_rules = sorted((f["rule"], f["location"]) for f in remote["findings"])
        assert remote_rules == sorted((f["rule"], f["location"]) for f in local["findings"]), ref

    # read in place: the 64 KiB of safetensors zeros are not fetched, only the header
    good = by_target[f"s3://{bucket}/teams/good/"]
    assert 0 < good["bytes_read"] < (1 << 16) * 4


def test_s3_reference_errors_are_one_line(s3, bucket, moto_endpoint, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    code, _, err = _scan(capsys, f"s3://{bucket}/nothing/here/")
    assert code == 2
    assert (
        err.strip()
        == f"mlgate: error: s3://{bucket}/nothing/here/: no object or prefix s3://{bucket}/nothing/here/ in S3"
    )
    code, _, err = _scan(capsys, "s3:///key")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "s3:///key" in err
