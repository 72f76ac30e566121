"""Leader election for the reconcile loop: one replica reconciles, every replica serves webhooks.

Built on the official client (``kubernetes.leaderelection`` with a coordination.k8s.io/v1 ``LeaseLock``).
Two things that library leaves to us:

* ``onstarted_leading`` runs in a daemon thread that nothing stops when the lease is lost, so a
  replica that lost its lease would keep reconciling next to the new leader. On losing the lease
  (or when the leading work ends or crashes) this process therefore exits at once (``os._exit``,
  status ``EXIT_LEASE_LOST``) and Kubernetes restarts it as a follower.
* Its ``Config`` calls ``sys.exit`` on bad timings and its API calls have no timeout. ``LeaderSettings``
  validates the timings first (one clear error) and every Lease call carries a request timeout small
  enough that a leader always gives up before another replica may take over:
  ``lease_duration > renew_deadline + retry_period + 2 * request_timeout``.

``mlgate_leader`` is 1 while this replica leads.

The controller itself now competes through ``shards.py`` (one Lease per shard; with one shard the
Lease named here, so the single-leader mode is its shards=1 case); ``LeaderSettings`` (timings,
``shards``) and the timed Lease API are shared with it, and ``Elector`` stays for one-Lease callers.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock
from urllib3.exceptions import HTTPError

from ..config.environment import lease_overrides, pod_identity
from .metrics import LEADER

log = logging.getLogger("mlgate.leader")

EXIT_LEASE_LOST = 3
DEFAULT_LEASE_NAME = "mlgate-controller"
MAX_SHARDS = 256
JITTER_FACTOR = 1.2  # the official Config's own check: renew_deadline > 1.2 * retry_period


class LeaderElectionError(Exception):
    """Leader election cannot start (bad settings, no cluster credentials); one line for a person."""


@dataclass(frozen=True)
class LeaderSettings:
    """Who competes for which Lease, and how fast (seconds)."""

    namespace: str
    identity: str
    lease_name: str = DEFAULT_LEASE_NAME
    lease_duration: int = 15  # whole seconds: the Lease stores leaseDurationSeconds as an integer
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    request_timeout: float | None = None  # default: a third of the slack the lease leaves, at most 5 s
    shards: int = 1  # model names spread over this many Leases (controller/runtime/shards.py)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LeaderSettings:
        """Settings from the pod environment: ``POD_NAMESPACE``, ``POD_NAME`` (downward API) and
        optional ``MLGATE_LEASE_NAME``, ``MLGATE_LEASE_DURATION``, ``MLGATE_RENEW_DEADLINE``,
        ``MLGATE_RETRY_PERIOD``, ``MLGATE_SHARDS``."""
        namespace, identity = pod_identity(environ)
        namespace = namespace or _service_account_namespace()
        overrides = lease_overrides(environ)
        if not namespace:
            raise LeaderElectionError("leader election needs POD_NAMESPACE (set it from metadata.namespace)")
        if not identity:
            raise LeaderElectionError("leader election needs POD_NAME (set it from metadata.name)")
        values: dict[str, Any] = {}
        for field_name, var in (
            ("lease_duration", "MLGATE_LEASE_DURATION"),
            ("renew_deadline", "MLGATE_RENEW_DEADLINE"),
            ("retry_period", "MLGATE_RETRY_PERIOD"),
            ("shards", "MLGATE_SHARDS"),
        ):
            raw = overrides.get(field_name)
            if raw:
                whole = field_name in ("lease_duration", "shards")
                try:
                    values[field_name] = int(raw) if whole else float(raw)
                except ValueError:
                    kind = "a whole number" if whole else "a number"
                    what = "" if field_name == "shards" else " of seconds"
                    raise LeaderElectionError(f"{var} must be {kind}{what}, got {raw!r}") from None
        settings = cls(
            namespace=namespace,
            identity=identity,
            lease_name=overrides.get("name") or DEFAULT_LEASE_NAME,
            **values,
        )
        settings.validate()
        return settings

    @property
    def timeout(self) -> float:
        """Per-request timeout for Lease reads and writes."""
        if self.request_timeout is not None:
            return self.request_timeout
        return min(5.0, (self.lease_duration - self.renew_deadline - self.retry_period) / 3)

    def validate(self) -> None:
        """Raise ``LeaderElectionError`` unless these timings keep at most one leader at a time."""
        if isinstance(self.shards, bool) or not isinstance(self.shards, int) or not 1 <= self.shards <= MAX_SHARDS:
            raise LeaderElectionError(f"shards must be a whole number from 1 to {MAX_SHARDS}, got {self.shards!r}")
        if isinstance(self.lease_duration, bool) or not isinstance(self.lease_duration, int):
            raise LeaderElectionError("lease duration must be a whole number of seconds")
        if self.retry_period < 1:
            raise LeaderElectionError("retry period must be at least 1 s (the official client's limit)")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise LeaderElectionError(
                f"renew deadline ({self.renew_deadline:g} s) must exceed "
                f"{JITTER_FACTOR:g} x retry period ({self.retry_period:g} s)"
            )
        if self.timeout < 0.1 or (self.lease_duration <= self.renew_deadline + self.retry_period + 2 * self.timeout):
            raise LeaderElectionError(
                f"lease duration ({self.lease_duration:g} s) must exceed renew deadline + retry period + "
                f"2 x request timeout, or a stalled leader could outlive its lease (use e.g. 15/10/2)"
            )


def api_client() -> client.ApiClient:
    """An API client from the in-cluster service account, else from the local kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise LeaderElectionError(f"no Kubernetes credentials for leader election: {exc}") from None
    return client.ApiClient()


def exit_process(code: int = EXIT_LEASE_LOST) -> NoReturn:
    """Stop now, whatever other threads are doing (the leading thread cannot be stopped otherwise)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class Elector:
    """Competes for the Lease and runs ``lead`` while this replica holds it.

    ``run()`` blocks; ``start()`` runs it in a daemon thread so the process can serve webhooks,
    metrics and probes meanwhile. ``on_lost`` runs when leadership ends (lease lost, or ``lead``
    returned or raised); the default exits the process with ``EXIT_LEASE_LOST``.
    """

    def __init__(
        self,
        settings: LeaderSettings,
        lead: Callable[[], None],
        api: client.ApiClient | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        settings.validate()
        self.settings = settings
        self._lead = lead
        self._api = api
        self._on_lost = on_lost or exit_process
        self.leading = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = False
        self._end_lock = threading.Lock()

    def _lock(self) -> LeaseLock:
        lock = LeaseLock(self.settings.lease_name, self.settings.namespace, self.settings.identity)
        lock.api_instance = _TimedCoordinationApi(self._api or api_client(), self.settings.timeout)
        return lock

    def run(self) -> None:
        """Follow until the lease is ours, lead, and call ``on_lost`` when leading ends."""
        s = self.settings
        LEADER.set(0)
        election = electionconfig.Config(
            self._lock(),
            lease_duration=s.lease_duration,
            renew_deadline=s.renew_deadline,
            retry_period=s.retry_period,
            onstarted_leading=self._leading,
            onstopped_leading=self._stopped,
        )
        log.info("%s competing for lease %s/%s", s.identity, s.namespace, s.lease_name)
        try:
            leaderelection.LeaderElection(election).run()
        except Exception:  # the loop died: leading (if it was) is no longer protected by the lease
            log.exception("leader election failed")
        self._stopped()  # run() returns only when leadership ended or the loop broke

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="mlgate-leader-election", daemon=True)
        self._thread.start()
        return self._thread

    def _leading(self) -> None:
        LEADER.set(1)
        self.leading.set()
        log.info("%s is the leader: reconciling", self.settings.identity)
        try:
            self._lead()
            log.warning("the leading work returned; giving up leadership")
        except BaseException:  # even SystemExit: a dead leading thread must not keep renewing the lease
            log.exception("the leading work crashed; giving up leadership")
        self._stopped()

    def _stopped(self) -> None:
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
        was_leading = self.leading.is_set()
        self.leading.clear()
        LEADER.set(0)
        if was_leading:
            log.warning(
                "%s lost the lease %s/%s; exiting so a fresh follower takes its place",
                self.settings.identity,
                self.settings.namespace,
                self.settings.lease_name,
            )
        self._on_lost()


def _service_account_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


class _TimedCoordinationApi(client.CoordinationV1Api):
    """CoordinationV1Api whose Lease calls carry a request timeout (the library sets none) and report
    transport failures (refused, reset, timed out) as ``ApiException``: the library retries those, but
    any other exception would kill its loop without ``onstopped_leading``, leaving the leading thread
    running without a lease."""

    def __init__(self, api: client.ApiClient, timeout: float) -> None:
        super().__init__(api)
        self._timeout = timeout

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        try:
            return method(*args, **kwargs)
        except ApiException:
            raise
        except (HTTPError, OSError) as exc:
            raise ApiException(status=0, reason=f"{type(exc).__name__}: {exc}") from exc

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Any:
        return self._call(super().read_namespaced_lease, name, namespace, **kwargs)

    def create_namespaced_lease(self, namespace: str, body: Any, **kwargs: Any) -> Any:
        return self._call(super().create_namespaced_lease, namespace, body, **kwargs)

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **kwargs: Any) -> Any:
        return self._call(super().replace_namespaced_lease, name, namespace, body, **kwargs)
