"""S3 verdict reports against moto: kept next to the model under the reports prefix, pointed at by a tag, served."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from s3_helpers import SIGNING_KEY, evil_pickle, hf_config, make_source, reconcile, tags

from mlgate.analyzers.core.policy import Policy
from mlgate.controller.config.buckets import BucketConfig
from mlgate.controller.reports import ReportKeeper, local_fallback
from mlgate.controller.runtime.http_server import HttpServer

pytestmark = pytest.mark.integration


def test_s3_reports_are_kept_next_to_the_model_and_served(s3, bucket, moto_endpoint, tmp_path):
    s3.put_object(Bucket=bucket, Key="teams/x/config.json", Body=hf_config())
    s3.put_object(Bucket=bucket, Key="teams/x/model.pkl", Body=evil_pickle("s3-report"))
    keeper = ReportKeeper(Policy(), SIGNING_KEY, local_fallback(tmp_path))
    source = make_source(BucketConfig(bucket=bucket, prefixes=("teams/",)), moto_endpoint, reports=keeper)
    reconcile(source)

    object_tags = tags(s3, bucket, "teams/x/model.pkl")
    assert object_tags["mlgate.verdict"] == "quarantined"
    location, _, digest = object_tags["mlgate.report"].partition(" sha256:")
    assert location.startswith(f"s3://{bucket}/.mlgate/reports/teams/x/report-") and len(digest) == 64
    assert tags(s3, bucket, "teams/x/config.json")["mlgate.report"] == object_tags["mlgate.report"]
    key = location.removeprefix(f"s3://{bucket}/")
    stored = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored["subject"] == {"source": "s3", "ref": f"s3://{bucket}/teams/x/", "bucket": bucket, "root": "teams/x/"}
    assert stored["verdict"] == "quarantined" and stored["report"]["digest"] == object_tags["mlgate.digest"]

    reconcile(source)  # the report object is the controller's own: never a model, never rescanned
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", ())]
    assert [k for k in listed if k.startswith(".mlgate/reports/")] == [key]

    http = HttpServer(port=0, metrics=False)
    keeper.install(http)
    http.start()
    try:
        with urllib.request.urlopen(f"{http.url}/reports/s3/{bucket}/teams/x/?format=json", timeout=10) as resp:
            served = json.load(resp)
        assert served["live"]["state"] == "quarantined" and served["verdict"] == "quarantined"
        with urllib.request.urlopen(f"{http.url}/reports?source=s3&verdict=quarantined", timeout=10) as resp:
            page = resp.read().decode()
        assert f"s3://{bucket}/teams/x/" in page

        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({**stored, "verdict": "approved"}).encode())
        try:
            urllib.request.urlopen(f"{http.url}/reports/s3/{bucket}/teams/x/", timeout=10)
            raise AssertionError("an edited report was served")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404 and b"does not match the hash" in exc.read()
    finally:
        http.stop()
