"""Issue 17: the chart's NetworkPolicy egress goes only where it is told (DNS and the API server by default)."""

from __future__ import annotations

from k8s_helpers import render_chart


def _egress(values: dict | None = None) -> list[dict]:
    docs, _ = render_chart(values)
    [policy] = [d for d in docs if d and d.get("kind") == "NetworkPolicy"]
    return policy["spec"]["egress"]


def test_default_egress_is_dns_only_when_the_api_server_cannot_be_looked_up() -> None:
    rules = _egress()
    assert rules == [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]


def test_every_non_dns_rule_names_its_destinations() -> None:
    values = {
        "networkPolicy": {
            "egress": {
                "kubernetesApi": {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}]},
                "mlflow": {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlflow"}}}]},
                "s3": {"to": [{"ipBlock": {"cidr": "52.95.0.0/16"}}], "ports": [443]},
            }
        }
    }
    rules = _egress(values)
    dns, api, mlflow, s3 = rules
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    assert api["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}]
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    assert mlflow["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "mlflow"}
    assert {p["port"] for p in mlflow["ports"]} == {5000, 443}
    assert s3["to"] == [{"ipBlock": {"cidr": "52.95.0.0/16"}}] and s3["ports"] == [{"protocol": "TCP", "port": 443}]
    for rule in rules:
        assert "to" in rule or {p["port"] for p in rule["ports"]} == {53}, rule


def test_extra_rules_are_kept_verbatim() -> None:
    extra = [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"protocol": "TCP", "port": 8443}]}]
    rules = _egress({"networkPolicy": {"egress": {"extra": extra, "dns": {"enabled": False}}}})
    assert rules == extra
