"""``analyzers/pickles/names.py``: the names the policy mentions, kept by the VM's memo compaction."""

from __future__ import annotations


def test_known_names_hold_every_mentioned_name_and_each_dotted_part() -> None:
    from mlgate.analyzers.pickles import names as policy_names

    mentioned = [(m, ()) for m in policy_names._DENY_WHOLE]
    mentioned += [(m, [n for n, _ in v]) for m, v in policy_names._DENY_NAMED.items()]
    mentioned += [(m, [n]) for m, n in policy_names._ALLOW_EXACT]
    mentioned += [(root, ()) for p in policy_names._ALLOW_PATTERNS for root in policy_names._roots(p)]
    expected = {part for module, attrs in mentioned for part in [module, *module.split("."), *attrs]}
    expected |= {part for _, attrs in mentioned for name in attrs for part in name.split(".")}
    expected |= policy_names._STDLIB | policy_names.DANGEROUS_NAMES
    assert policy_names.KNOWN_NAMES == expected
    assert {"torch", "_utils", "_rebuild_tensor_v2", "os", "system"} <= policy_names.KNOWN_NAMES
