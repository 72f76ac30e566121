"""Leader election with the official client's LeaderElection + LeaseLock against a real HTTP Lease API fake.

Candidates are separate processes (``elector_main.py``), so losing the lease really ends a process.
Timings: lease 3 s, renew deadline 1.5 s, retry 1 s (the official client's minimum retry period).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from elector_main import LEASE_DURATION, RETRY_PERIOD
from lease_fake import FakeLeaseAPI

from mlgate.controller.runtime.leader import EXIT_LEASE_LOST, LeaderElectionError, LeaderSettings

HERE = Path(__file__).resolve().parent


class Candidate:
    """One elector process and the lines it printed, with their times."""

    def __init__(self, api: FakeLeaseAPI, identity: str) -> None:
        self.identity = identity
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "elector_main.py"), api.url, identity],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def led_at(self) -> float | None:
        for line in self.lines:
            if line.startswith("LEADING "):
                return float(line.split()[2])
        return None

    def wait_leading(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (at := self.led_at()) is not None:
                return at
            time.sleep(0.05)
        return None

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith("READY ") for line in self.lines):
            assert time.monotonic() < deadline, f"{self.identity} never started"
            assert self.proc.poll() is None, f"{self.identity} exited with {self.proc.returncode}"
            time.sleep(0.05)

    def kill(self) -> float:
        self.proc.send_signal(signal.SIGKILL)
        killed = time.time()
        self.proc.wait(timeout=10)
        return killed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def api() -> FakeLeaseAPI:
    server = FakeLeaseAPI().start()
    yield server
    server.stop()


@pytest.fixture
def candidates(api: FakeLeaseAPI) -> list[Candidate]:
    started: list[Candidate] = []
    yield started
    for candidate in started:
        candidate.stop()


def test_one_leader_at_a_time_and_failover_after_the_lease(api: FakeLeaseAPI, candidates: list[Candidate]) -> None:
    candidates += [Candidate(api, "pod-a"), Candidate(api, "pod-b")]
    for candidate in candidates:
        candidate.wait_ready()
    deadline = time.monotonic() + 10
    while not any(c.led_at() for c in candidates):
        assert time.monotonic() < deadline, "nobody became leader"
        time.sleep(0.05)
    leader = next(c for c in candidates if c.led_at())
    follower = next(c for c in candidates if c is not leader)
    assert api.holder() == leader.identity

    # Through more than a full lease the follower stays a follower: the leader keeps renewing.
    renewals = len(api.writes)
    time.sleep(LEASE_DURATION + 1.5)
    assert follower.led_at() is None
    assert api.holder() == leader.identity
    assert len(api.writes) - renewals >= 2, "the leader stopped renewing"
    assert {holder for _, _, holder in api.writes} == {leader.identity}

    # The leader dies without releasing: the follower takes over once the lease has run out, not before.
    killed = leader.kill()
    took_over = follower.wait_leading(timeout=LEASE_DURATION + 4 * RETRY_PERIOD + 5)
    assert took_over is not None, "the follower never took over"
    failover = took_over - killed
    assert LEASE_DURATION - RETRY_PERIOD - 0.3 <= failover <= LEASE_DURATION + 3 * RETRY_PERIOD + 3, failover
    assert api.holder() == follower.identity
    assert follower.proc.poll() is None


@pytest.mark.parametrize("loss", ["stolen", "api-errors", "api-gone", "api-hangs"])
def test_a_leader_that_cannot_keep_its_lease_exits(api: FakeLeaseAPI, candidates: list[Candidate], loss: str) -> None:
    candidates.append(Candidate(api, "pod-a"))
    leader = candidates[0]
    assert leader.wait_leading(timeout=20) is not None
    time.sleep(0.5)
    lost_at = time.monotonic()
    if loss == "stolen":
        api.steal("pod-z")
    elif loss == "api-errors":
        api.outage = True  # 503 from every call
    elif loss == "api-gone":
        api.stop()  # connection refused
    else:
        api.delay = 5.0  # every call times out
    # It must give up (exit) within renew deadline + retry period + request timeouts, i.e. before the
    # lease it last renewed could have been granted to anybody else.
    leader.proc.wait(timeout=LEASE_DURATION + 5)
    gone_after = time.monotonic() - lost_at
    assert leader.proc.returncode == EXIT_LEASE_LOST
    assert gone_after < LEASE_DURATION + 1.0, gone_after
    if loss == "stolen":
        assert api.holder() == "pod-z"  # it never overwrote the new holder


def test_bad_timings_are_one_clear_error_not_sys_exit() -> None:
    with pytest.raises(LeaderElectionError, match="lease duration"):
        LeaderSettings(namespace="n", identity="i", lease_duration=10, renew_deadline=8, retry_period=2).validate()
    with pytest.raises(LeaderElectionError, match="retry period"):
        LeaderSettings(namespace="n", identity="i", retry_period=0.5).validate()
    with pytest.raises(LeaderElectionError, match="whole number"):
        LeaderSettings(namespace="n", identity="i", lease_duration=15.5).validate()
    LeaderSettings(namespace="n", identity="i").validate()  # the defaults (15/10/2) are safe


def test_settings_from_the_pod_environment() -> None:
    env = {
        "POD_NAMESPACE": "mlgate",
        "POD_NAME": "mlgate-7f9-abc",
        "MLGATE_LEASE_NAME": "mlgate-prod",
        "MLGATE_LEASE_DURATION": "20",
        "MLGATE_RENEW_DEADLINE": "12",
        "MLGATE_RETRY_PERIOD": "3",
    }
    settings = LeaderSettings.from_env(env)
    assert (settings.namespace, settings.identity, settings.lease_name) == ("mlgate", "mlgate-7f9-abc", "mlgate-prod")
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (20, 12.0, 3.0)
    assert settings.timeout == pytest.approx(5 / 3)
    with pytest.raises(LeaderElectionError, match="POD_NAME"):
        LeaderSettings.from_env({"POD_NAMESPACE": "mlgate", **{k: "" for k in ("POD_NAME", "HOSTNAME")}})
    with pytest.raises(LeaderElectionError, match="whole number"):
        LeaderSettings.from_env({**env, "MLGATE_LEASE_DURATION": "soon"})


@pytest.mark.parametrize("ending", ["returns", "raises"])
def test_leadership_ends_when_the_leading_work_ends(api: FakeLeaseAPI, ending: str) -> None:
    """In-process elector: mlgate_leader follows leadership, and the end of the work ends leadership."""
    from kubernetes import client

    from mlgate.controller.runtime.leader import Elector
    from mlgate.controller.runtime.metrics import REGISTRY

    configuration = client.Configuration()
    configuration.host = api.url
    release = threading.Event()
    lost = threading.Event()
    seen: list[float | None] = []

    def lead() -> None:
        seen.append(REGISTRY.get_sample_value("mlgate_leader"))
        release.wait(10)
        if ending == "raises":
            raise RuntimeError("reconcile loop crashed")

    settings = LeaderSettings(
        namespace="mlgate", identity="pod-in-process", lease_duration=3, renew_deadline=1.5, retry_period=1
    )
    elector = Elector(settings, lead, api=client.ApiClient(configuration), on_lost=lost.set)
    elector.start()
    assert elector.leading.wait(10)
    assert seen == [1.0]
    assert api.holder() == "pod-in-process"
    release.set()
    assert lost.wait(5), "on_lost was not called when the leading work ended"
    assert not elector.leading.is_set()
    assert REGISTRY.get_sample_value("mlgate_leader") == 0.0


def test_a_background_elector_gives_up_when_the_api_vanishes(api: FakeLeaseAPI) -> None:
    """Run from a background thread (as in the controller), a transport error must still end leadership."""
    from kubernetes import client

    from mlgate.controller.runtime.leader import Elector

    configuration = client.Configuration()
    configuration.host = api.url
    lost = threading.Event()
    settings = LeaderSettings(
        namespace="mlgate", identity="pod-bg", lease_duration=3, renew_deadline=1.5, retry_period=1
    )
    elector = Elector(
        settings, lambda: threading.Event().wait(30), api=client.ApiClient(configuration), on_lost=lost.set
    )
    elector.start()
    assert elector.leading.wait(10)
    api.stop()
    assert lost.wait(LEASE_DURATION), "leadership outlived the lease after the API server went away"
    assert not elector.leading.is_set()
