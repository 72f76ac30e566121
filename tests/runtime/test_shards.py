"""Sharded ownership: the stable hash, several ``LeasedShards`` against the real HTTP Lease fake, runtime routing.

Timings as in test_leader_election.py: lease 3 s, renew deadline 1.5 s, retry 1 s.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import Counter

import pytest
from lease_fake import FakeLeaseAPI

from mlgate.controller.config.settings import BackoffConfig
from mlgate.controller.runtime.engine import Runtime
from mlgate.controller.runtime.interface import ScanRequest
from mlgate.controller.runtime.leader import LeaderElectionError, LeaderSettings
from mlgate.controller.runtime.metrics import REGISTRY
from mlgate.controller.runtime.shards import WANTED_BY, LeasedShards, Ownership, lease_names, shard_of

SHARDS = 6


def test_shard_of_is_sha256_of_the_name_and_spreads_names() -> None:
    for name in ("fraud", "churn-model", "ünïcode/模型", ""):
        expected = int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) % 8
        assert shard_of(name, 8) == expected
        assert shard_of(name, 1) == 0
    counts = Counter(shard_of(f"model-{i}", 8) for i in range(4000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 400 and max(counts.values()) < 600, counts


def test_lease_names_keep_the_single_leader_lease_for_one_shard() -> None:
    assert lease_names("mlgate", 1) == ["mlgate"]
    assert lease_names("mlgate", 3) == ["mlgate-0", "mlgate-1", "mlgate-2"]


def test_shards_setting_from_the_environment() -> None:
    env = {"POD_NAMESPACE": "mlgate", "POD_NAME": "pod-a", "MLGATE_SHARDS": "16"}
    assert LeaderSettings.from_env(env).shards == 16
    assert LeaderSettings.from_env({**env, "MLGATE_SHARDS": ""}).shards == 1
    for bad in ("0", "many", "5000"):
        with pytest.raises(LeaderElectionError, match="MLGATE_SHARDS|shards"):
            LeaderSettings.from_env({**env, "MLGATE_SHARDS": bad})


@pytest.fixture
def api() -> FakeLeaseAPI:
    server = FakeLeaseAPI().start()
    yield server
    server.stop()


def _replica(api: FakeLeaseAPI, identity: str, shards: int = SHARDS) -> LeasedShards:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = api.url
    settings = LeaderSettings(
        namespace="mlgate",
        identity=identity,
        lease_name="mlgate",
        lease_duration=3,
        renew_deadline=1.5,
        retry_period=1,
        shards=shards,
    )
    return LeasedShards(settings, shards, api=client.ApiClient(configuration))


class Watch:
    """Samples every replica's owned shards every 20 ms and records any shard owned twice."""

    def __init__(self, replicas: list[LeasedShards]) -> None:
        self.replicas = replicas
        self.overlaps: list[tuple[int, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            seen: dict[int, list[str]] = {}
            for replica in self.replicas:
                for shard in replica.owned():
                    seen.setdefault(shard, []).append(replica.identity)
            self.overlaps += [(s, who) for s, who in seen.items() if len(who) > 1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _wait(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_replicas_spread_the_shards_and_take_over_a_dead_ones(api: FakeLeaseAPI) -> None:
    a = _replica(api, "pod-a")
    a.start()
    _wait("the first replica takes every shard", lambda: len(a.owned()) == SHARDS, 10)
    b, c = _replica(api, "pod-b"), _replica(api, "pod-c")
    watch = Watch([a, b, c])
    try:
        b.start()
        c.start()
        # Late replicas make themselves known (wanted-by) and the first gives shards back.
        _wait(
            "three replicas end with two shards each",
            lambda: sorted(len(r.owned()) for r in (a, b, c)) == [2, 2, 2],
            40,
        )
        assert a.owned() | b.owned() | c.owned() == set(range(SHARDS))
        for shard in range(SHARDS):
            holder = api.holder(name=f"mlgate-{shard}")
            assert (
                holder in ("pod-a", "pod-b", "pod-c") and shard in {"pod-a": a, "pod-b": b, "pod-c": c}[holder].owned()
            )
        assert {"pod-b", "pod-c"} & set(a._wanted), f"no {WANTED_BY} wish reached the first replica"

        # b dies without releasing: its Leases run out, a and c take its shards over, no sooner.
        lost = set(b.owned())
        b._stop.set()  # the loop ends as if the process died: no release, no more renewals
        b._thread.join(5)
        b._change(lost=lost)
        died = time.monotonic()
        _wait("the survivors own every shard", lambda: a.owned() | c.owned() == set(range(SHARDS)), 20)
        assert time.monotonic() - died >= 3 - 1.5, "taken over before the dead replica's Leases ran out"
        _wait("balanced again", lambda: sorted(len(r.owned()) for r in (a, c)) == [3, 3], 20)
    finally:
        watch.stop()
        for replica in (a, b, c):
            replica.stop()
    assert not watch.overlaps, watch.overlaps[:5]


def test_a_clean_stop_hands_shards_over_at_once(api: FakeLeaseAPI) -> None:
    a, b = _replica(api, "pod-a", 2), _replica(api, "pod-b", 2)
    a.start()
    _wait("a owns both", lambda: len(a.owned()) == 2, 10)
    b.start()
    _wait("one each", lambda: len(a.owned()) == len(b.owned()) == 1, 30)
    stopped = time.monotonic()
    a.stop()  # releases its Lease: b need not wait for it to expire
    _wait("b owns both", lambda: len(b.owned()) == 2, 10)
    assert time.monotonic() - stopped < 3, "b waited for the released Lease to expire"
    b.stop()
    assert REGISTRY.get_sample_value("mlgate_shards_owned") == 0.0


def test_a_holder_that_cannot_renew_stops_work_before_its_lease_runs_out(api: FakeLeaseAPI) -> None:
    a = _replica(api, "pod-a", 3)
    lost_at: list[float] = []
    a.subscribe(lambda gained, lost: lost_at.append(time.monotonic()) if lost else None)
    a.start()
    _wait("a owns all", lambda: len(a.owned()) == 3, 10)
    time.sleep(0.5)
    cut = time.monotonic()
    api.delay = 5.0  # every call hangs past the request timeout
    _wait("a gives its shards up", lambda: not a.owned(), 10)
    assert lost_at and lost_at[-1] - cut < 3, "work continued past the lease duration"
    api.delay = 0.0
    a.stop(release=False)


class _ShardedSource:
    name = "fake"

    def __init__(self) -> None:
        self.owns = lambda name: True
        self.resyncs = 0
        self.passes = 0
        self.scanned: list[str] = []

    def shard_key(self, request: ScanRequest) -> str | None:  # as MLflowSource: webhooks run anywhere
        return request.key[1] if request.key[0] == "version" and request.reason != "webhook" else None

    def resync(self) -> None:
        self.resyncs += 1

    def reconcile_once(self) -> list[ScanRequest]:
        self.passes += 1
        return []

    def scan(self, request: ScanRequest) -> None:
        self.scanned.append(request.key[1])
        return None

    def record(self, request: ScanRequest, scanned: object) -> None:  # pragma: no cover - scan returns None
        raise AssertionError


class _Manual(Ownership):
    def set(self, gained=(), lost=()) -> None:
        self._change(gained=gained, lost=lost)


def test_the_runtime_routes_work_by_shard(caplog: pytest.LogCaptureFixture) -> None:
    source = _ShardedSource()
    ownership = _Manual(4)
    runtime = Runtime([source], BackoffConfig(), workers=1, poll_interval=60, leadership=ownership)
    names = [f"m{i}" for i in range(40)]
    mine = {n for n in names if shard_of(n, 4) in (0, 1)}
    ownership.set(gained=[0, 1])
    assert source.resyncs == 1
    assert source.owns is not None and {n for n in names if source.owns(n)} == mine
    before = REGISTRY.get_sample_value("mlgate_requests_not_owned_total", {"source": "fake"}) or 0
    for n in names:
        runtime.enqueue(ScanRequest("fake", ("version", n, "1"), "reconcile"))
    runtime.enqueue(ScanRequest("fake", ("alias", names[0], "prod"), "webhook"))  # no shard: kept
    runtime.enqueue(ScanRequest("fake", ("version", names[-1], "9"), "webhook"))  # webhooks run where they land
    assert len(runtime.queue) == len(mine) + 2
    dropped = REGISTRY.get_sample_value("mlgate_requests_not_owned_total", {"source": "fake"}) - before
    assert dropped == len(names) - len(mine)
    # Losing shard 1 drops its queued work (nothing runs yet: no worker started).
    with caplog.at_level("INFO", logger="mlgate"):
        ownership.set(lost=[1])
    assert "shards lost: queued work dropped" in caplog.text and "listener failed" not in caplog.text
    assert len(runtime.queue) == len([n for n in mine if shard_of(n, 4) == 0]) + 2
    assert not runtime.ready()  # owns shard 0: a reconciler whose first pass has not run
    runtime.start()
    try:
        _wait("the queue drains", lambda: runtime.queue.wait_idle(0.1), 10)
        _wait("a pass ran", lambda: source.passes >= 1 and runtime.ready(), 10)
    finally:
        runtime.stop()
    assert set(source.scanned) == {n for n in mine if shard_of(n, 4) == 0} | {names[0], names[-1]}


def test_a_given_up_shard_is_held_until_its_running_scans_end(api: FakeLeaseAPI) -> None:
    """No hand-over while a scan of the shard still runs: the next owner never scans the same version."""
    scanning = threading.Event()
    scanning.set()
    a, b = _replica(api, "pod-a", 2), _replica(api, "pod-b", 2)
    a.busy = lambda shard: scanning.is_set()
    a.start()
    _wait("a owns both", lambda: len(a.owned()) == 2, 10)
    b.start()
    try:
        _wait("a gives one up", lambda: len(a.owned()) == 1, 30)
        given_up = ({0, 1} - a.owned()).pop()
        time.sleep(4)  # more than a lease duration: a keeps renewing it while the scan runs
        assert api.holder(name=f"mlgate-{given_up}") == "pod-a"
        assert not b.owned()
        scanning.clear()
        _wait("b takes it once the scan ended", lambda: b.owned() == {given_up}, 10)
    finally:
        a.stop()
        b.stop()


def test_asking_a_dead_holder_for_a_shard_does_not_keep_its_leases_alive(api: FakeLeaseAPI) -> None:
    """Hungry replicas write wanted-by onto the busiest holder's Leases; if that holder is dead, those
    writes (a new resourceVersion, the same renew time) must not count as renewals."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    path = "/apis/coordination.k8s.io/v1/namespaces/mlgate/leases"
    for shard in range(3):
        spec = {"holderIdentity": "pod-dead", "leaseDurationSeconds": 3, "renewTime": stamp, "acquireTime": stamp}
        status, _ = api._handle("POST", path, {"metadata": {"name": f"mlgate-{shard}"}, "spec": spec})
        assert status == 201
    stop = threading.Event()

    def hungry_crowd() -> None:  # other replicas asking, twice a second
        n = 0
        while not stop.wait(0.5):
            for shard in range(3):
                with api._lock:
                    lease = copy.deepcopy(api.leases[("mlgate", f"mlgate-{shard}")])
                if lease["spec"].get("holderIdentity") != "pod-dead":
                    continue
                n += 1
                lease["metadata"]["annotations"] = {WANTED_BY: f"pod-x {n:08x}"}
                api._handle("PUT", f"{path}/mlgate-{shard}", lease)

    crowd = threading.Thread(target=hungry_crowd, daemon=True)
    crowd.start()
    a = _replica(api, "pod-a", 4)
    a.start()
    try:
        _wait("a takes the free shard", lambda: 3 in a.owned(), 10)
        _wait("the dead holder's Leases run out and a owns every shard", lambda: len(a.owned()) == 4, 15)
    finally:
        stop.set()
        crowd.join()
        a.stop()


def test_single_replica_mode_reports_one_shard_owned() -> None:
    source = _ShardedSource()
    runtime = Runtime([source], BackoffConfig(), workers=1, poll_interval=60)  # no leader election
    owned_before = REGISTRY.get_sample_value("mlgate_shards_owned")
    runtime.start()
    try:
        _wait("a pass ran", lambda: source.passes >= 1, 10)
        assert REGISTRY.get_sample_value("mlgate_shards") == 1
        assert REGISTRY.get_sample_value("mlgate_shards_owned") == 1, owned_before
        assert all(source.owns(f"m{i}") for i in range(20))
    finally:
        runtime.stop()
