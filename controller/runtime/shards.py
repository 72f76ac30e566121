"""Scale-out: model names map to a fixed number of shards; each shard is owned through its own Lease.

* ``shard_of(name, shards)``: a stable hash (the first 8 bytes of sha256 of the UTF-8 name, modulo
  ``shards``), the same in every process, language and release (Python's ``hash()`` is salted).
* ``AllShards`` (the default: one replica, no leader election) owns every shard all the time.
* ``LeasedShards`` owns shard ``i`` while it holds the coordination.k8s.io/v1 Lease
  ``<lease-name>-<i>`` (with one shard: ``<lease-name>`` itself, the Lease of the single-leader mode,
  so an upgrade from it never has two leaders). Any replica may hold several Leases.

Why our own loop and not the official client's ``LeaderElection`` (which ``leader.py`` keeps for
its tests and callers): that library competes for one Lease per thread, greedily, and has no way
to give a Lease up. The first replica to start would take every shard and keep it, so nothing
would spread. ``LeasedShards`` runs one thread for all shards; every ``retry_period`` it reads
each shard's Lease and:

* renews the ones it holds (a conflict is re-read and retried once at once);
* takes a free or expired one while it holds fewer than its fair share
  ``ceil(shards / live replicas)``, or whatever stays free longer than one lease duration (an
  orphan: nothing is ever left unowned);
* gives back (releases: holder emptied) what exceeds its fair share, and one shard whose Lease
  carries a fresh ``mlgate.io/wanted-by`` annotation while it holds more than
  ``floor(shards / live)``;
* while it holds fewer than ``floor(shards / live)`` and nothing is free, writes its identity
  into ``mlgate.io/wanted-by`` on a Lease of the busiest holder: that is how a replica that holds
  nothing becomes visible to the others (the live replicas are the holders of unexpired Leases,
  the fresh wanted-by identities, and itself).

Timing is the single-leader contract (``LeaderSettings``): a Lease counts as expired when its
record has not changed for ``leaseDurationSeconds`` of the observer's own clock (no clock skew
between pods matters), and a holder that could not renew for ``renew_deadline`` (checked before
every API call, so a hanging API server delays it by at most one request timeout) stops the
shard's work first. ``lease_duration > renew_deadline + retry_period + 2 x request timeout``
guarantees the old holder has stopped before anybody else may take the shard.

Losing a shard no longer ends the process (the single-leader mode exited on lease loss). With
many shards a process exit on every lost or rebalanced Lease would restart the pod, drop every
other shard it holds and the admission/webhook traffic it serves, and cascade the moves. Instead
the runtime's listeners stop the shard's work: its queued reconcile requests are dropped, a worker
checks ownership before each scan, and the reconcile pass skips the shard's names (webhook
requests are not routed by shard: every replica handles those it receives, idempotently). A
shard given up on purpose (rebalancing, a clean stop) is handed over only once no scan of its
names runs here any more (``busy``, from the runtime; at most ``drain_seconds``): until then its
Lease is still renewed, so the next owner never scans a version this replica is scanning. A scan already
running when its shard is lost (Lease expired or taken) finishes and records its verdict: the
verdict is bound to the content and signed, so the new owner (which skips validly verdicted
versions) at worst scans the version once more, never records a wrong verdict. A shard gained triggers a
full reconcile pass for it, so nothing changed while nobody owned it is missed.

``mlgate_shards_owned`` is the number of shards this replica owns, ``mlgate_shards`` the
configured number; ``mlgate_leader`` is 1 on the owner of shard 0 (which also runs the sources
that are not sharded, e.g. S3 listings: one replica, as before).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from .metrics import LEADER, SHARDS, SHARDS_OWNED

log = logging.getLogger("mlgate.shards")

WANTED_BY = "mlgate.io/wanted-by"
MAX_SHARDS = 256  # as leader.MAX_SHARDS: every replica reads every shard's Lease once per retry period

Listener = Callable[[frozenset[int], frozenset[int]], None]
"""Called with (gained, lost) shard numbers after every change of ownership."""


def shard_of(name: str, shards: int) -> int:
    """The shard of a model name: sha256 of its UTF-8 bytes, first 8 bytes big-endian, modulo ``shards``."""
    if shards <= 1:
        return 0
    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()[:8], "big") % shards


def lease_names(lease_name: str, shards: int) -> list[str]:
    """The Lease of each shard: ``<lease_name>-<i>``, or ``<lease_name>`` alone with one shard."""
    return [lease_name] if shards == 1 else [f"{lease_name}-{i}" for i in range(shards)]


class Ownership:
    """Which shards this replica owns now, with change listeners. Also a ``Leadership``: the leader
    (for sources that are not sharded) is the owner of shard 0."""

    def __init__(self, shards: int = 1) -> None:
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"shards must be between 1 and {MAX_SHARDS}, got {shards}")
        self.shards = shards
        self._owned: set[int] = set()
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.busy: Callable[[int], bool] = lambda _shard: False  # the runtime: does a scan of it still run?
        SHARDS.set(shards)
        SHARDS_OWNED.set(0)

    def owned(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._owned)

    def owns_shard(self, shard: int) -> bool:
        with self._lock:
            return shard in self._owned

    def owns(self, name: str) -> bool:
        """Does this replica own the shard of model ``name``?"""
        return self.owns_shard(shard_of(name, self.shards))

    def owns_any(self) -> bool:
        with self._lock:
            return bool(self._owned)

    def is_leader(self) -> bool:
        return self.owns_shard(0)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _change(self, gained: Iterable[int] = (), lost: Iterable[int] = ()) -> None:
        with self._lock:
            gained = frozenset(g for g in gained if g not in self._owned)
            lost = frozenset(g for g in lost if g in self._owned)
            self._owned |= gained
            self._owned -= lost
            count = len(self._owned)
            leader = 0 in self._owned
        if not gained and not lost:
            return
        SHARDS_OWNED.set(count)
        LEADER.set(1 if leader else 0)
        for listener in self._listeners:
            try:
                listener(gained, lost)
            except Exception:  # a listener must not break ownership bookkeeping
                log.exception("shard listener failed")


class AllShards(Ownership):
    """Single-replica default: every shard is ours, always."""

    def __init__(self, shards: int = 1) -> None:
        super().__init__(shards)
        self._change(gained=range(shards))


def _now_utc() -> datetime:
    return datetime.now(timezone.utc)


class LeasedShards(Ownership):
    """Shards owned through one Lease each (see the module docstring). ``start()`` runs the loop in a
    daemon thread; ``stop()`` ends it and releases every held Lease (a clean shutdown hands shards
    over at once instead of after a lease duration)."""

    def __init__(self, settings: Any, shards: int, api: Any = None) -> None:
        super().__init__(shards)
        settings.validate()
        self.settings = settings
        self.identity: str = settings.identity
        self.names = lease_names(settings.lease_name, shards)
        self._api_client = api
        self._api: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed: dict[int, float] = {}  # shard -> monotonic time the last successful renew was sent
        self._draining: dict[int, float] = {}  # shard given up, still held until its scans end -> give-up time
        self.drain_seconds = max(30.0, 4.0 * settings.lease_duration)
        self._seen: dict[int, tuple[tuple[Any, ...], float]] = {}  # shard -> (record, first seen)
        self._holders: dict[int, str] = {}  # shard -> live holder (not us)
        self._free_since: dict[int, float] = {}  # shard -> when its Lease was first seen free or expired
        self._wanted: dict[str, tuple[str, float]] = {}  # identity -> (annotation value, first seen)
        self._asked = 0.0
        # Start at a place that differs per replica, so replicas starting together take different shards.
        self._offset = int.from_bytes(hashlib.sha256(self.identity.encode()).digest()[:4], "big") % shards

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        from .leader import _TimedCoordinationApi, api_client

        self._api = _TimedCoordinationApi(self._api_client or api_client(), self.settings.timeout)
        log.info(
            "%s competing for %d shard lease(s) %s/%s",
            self.identity,
            self.shards,
            self.settings.namespace,
            self.names[0] if self.shards == 1 else f"{self.settings.lease_name}-*",
        )
        self._thread = threading.Thread(target=self._run, name="mlgate-shard-leases", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.settings.retry_period + 2 * self.settings.timeout + 1)
        held = sorted(self.owned() | self._draining.keys())
        self._change(lost=held)
        self._draining.clear()
        if release and self._api is not None:
            for shard in held:
                self._release_write(shard)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._round()
            except Exception:  # the loop must survive anything; deadlines still apply
                log.exception("shard lease round failed")
                self._expire_stale()
            period = self.settings.retry_period * (0.9 + 0.2 * random.random())
            self._stop.wait(max(0.05, period - (time.monotonic() - started)))

    # -- one round ----------------------------------------------------------------------------------

    def _round(self) -> None:
        # Held shards first, each renewed right after it is read, so the renewals never wait for
        # reads of the others (the round's length grows with the shard count, the renewals' not).
        leases: dict[int, Any] = {}
        for shard in sorted(self.owned() | self._draining.keys()):
            if self._stop.is_set():
                return
            leases[shard] = self._renew(shard, self._read(shard))
        for k in range(self.shards):
            shard = (self._offset + k) % self.shards
            if self._stop.is_set():
                return
            if shard not in leases:
                leases[shard] = self._read(shard)
        now = time.monotonic()
        live = {self.identity, *self._holders.values()}
        live |= {who for who, (_, seen) in self._wanted.items() if now - seen < 2 * self.settings.lease_duration}
        fair_hi = math.ceil(self.shards / len(live))
        fair_lo = self.shards // len(live)
        owned = self.owned()
        # Give back what exceeds the fair share (newest-numbered first), then one wanted shard.
        excess = len(owned) - fair_hi
        for shard in sorted(owned, reverse=True)[: max(0, excess)]:
            self._release(shard, leases.get(shard), "more than a fair share")
        owned = self.owned()
        if len(owned) > fair_lo:
            for shard in sorted(owned):
                lease = leases.get(shard)
                if lease is not None and self._fresh_wish(lease, now):
                    self._release(shard, lease, "wanted by another replica")
                    break
        # Hand over given-up shards once no scan of theirs runs any more.
        for shard, until in list(self._draining.items()):
            if not self.busy(shard) or now > until:
                self._hand_over(shard, leases.get(shard))
        # Take free shards while under the fair share; orphans (free for a whole lease) in any case.
        for k in range(self.shards):
            shard = (self._offset + k) % self.shards
            if self.owns_shard(shard) or shard in self._draining or shard in self._holders:
                continue
            lease = leases.get(shard, _MISSING)
            if lease is _MISSING:
                continue  # unreadable this round
            orphan = now - self._free_since.get(shard, now) > self.settings.lease_duration
            if len(self.owned()) < fair_hi or orphan:
                self._acquire(shard, lease)
        # Hungry and nothing free: ask the busiest holder for one.
        if len(self.owned()) < fair_lo and now - self._asked > self.settings.lease_duration:
            self._ask(leases)

    def _expire_stale(self) -> None:
        """Stop work on every shard not renewed within the renew deadline (before any API call)."""
        now = time.monotonic()
        for shard in [s for s in self._draining if now - self._renewed.get(s, now) > self.settings.renew_deadline]:
            del self._draining[shard]  # could not keep it: it expires by itself
        stale = [s for s in self.owned() if now - self._renewed.get(s, now) > self.settings.renew_deadline]
        if stale:
            log.warning(
                "%s could not renew shard lease(s) %s in time; stopping their work",
                self.identity,
                ", ".join(self.names[s] for s in stale),
            )
            self._change(lost=stale)

    def _read(self, shard: int) -> Any:
        """The shard's Lease (None when it does not exist; ``_MISSING`` when unreadable now)."""
        from kubernetes.client.exceptions import ApiException

        self._expire_stale()
        try:
            lease = self._api.read_namespaced_lease(self.names[shard], self.settings.namespace)
        except ApiException as exc:
            if exc.status == 404:
                self._observe(shard, None)
                return None
            log.debug("reading lease %s failed: %s", self.names[shard], exc.reason)
            return _MISSING
        self._observe(shard, lease)
        return lease

    def _observe(self, shard: int, lease: Any) -> None:
        """Remember when the Lease's record last changed (expiry runs on our own clock)."""
        now = time.monotonic()
        spec = lease.spec if lease is not None else None
        holder = (spec.holder_identity or "") if spec is not None else ""
        # Holder and renew time only: another replica's wanted-by write (a new resourceVersion) must
        # not make a dead holder's Lease look renewed.
        record = (holder, str(spec.renew_time) if spec is not None else "")
        previous = self._seen.get(shard)
        if previous is None or previous[0] != record:
            self._seen[shard] = (record, now)
        seen_at = self._seen[shard][1]
        duration = (spec.lease_duration_seconds if spec is not None else None) or self.settings.lease_duration
        live = bool(holder) and now - seen_at <= duration
        if live and holder != self.identity:
            self._holders[shard] = holder
            self._draining.pop(shard, None)
            if self.owns_shard(shard):
                log.warning("%s lost shard lease %s to %s", self.identity, self.names[shard], holder)
                self._change(lost=[shard])
        else:
            self._holders.pop(shard, None)
        if live:
            self._free_since.pop(shard, None)
        else:  # free since it was emptied, or since it expired
            self._free_since.setdefault(shard, seen_at if not holder else seen_at + duration)
        wish = _annotations(lease).get(WANTED_BY, "") if lease is not None else ""
        who = wish.split(" ")[0]
        if who and who != self.identity:
            if self._wanted.get(who, ("", 0.0))[0] != wish:
                self._wanted[who] = (wish, now)

    def _fresh_wish(self, lease: Any, now: float) -> bool:
        wish = _annotations(lease).get(WANTED_BY, "")
        who = wish.split(" ")[0]
        if not who or who == self.identity or who not in self._wanted:
            return False
        return now - self._wanted[who][1] < self.settings.lease_duration

    # -- writes -------------------------------------------------------------------------------------

    def _write(self, shard: int, lease: Any, spec: Any, annotations: dict[str, str] | None) -> Any:
        """Create or replace the shard's Lease (optimistic concurrency); the written Lease or None."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        self._expire_stale()
        metadata = client.V1ObjectMeta(name=self.names[shard], namespace=self.settings.namespace)
        if lease is not None:
            metadata.resource_version = lease.metadata.resource_version
        metadata.annotations = annotations or None
        body = client.V1Lease(api_version="coordination.k8s.io/v1", kind="Lease", metadata=metadata, spec=spec)
        try:
            if lease is None:
                return self._api.create_namespaced_lease(self.settings.namespace, body)
            return self._api.replace_namespaced_lease(self.names[shard], self.settings.namespace, body)
        except ApiException as exc:
            log.debug("writing lease %s failed: %s %s", self.names[shard], exc.status, exc.reason)
            return None

    def _spec(self, lease: Any, taking: bool) -> Any:
        from kubernetes import client

        old = lease.spec if lease is not None else None
        now = _now_utc()
        transitions = (old.lease_transitions or 0) if old is not None else 0
        if taking and old is not None and (old.holder_identity or "") != self.identity:
            transitions += 1
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.settings.lease_duration,
            acquire_time=now if taking else (old.acquire_time if old is not None else now),
            renew_time=now,
            lease_transitions=transitions,
        )

    def _renew(self, shard: int, lease: Any) -> Any:
        """Renew a held shard's Lease; the Lease as it now is (as read when the renewal failed)."""
        if lease is _MISSING or lease is None:
            return lease  # unreadable (deadline applies) or deleted under us (re-acquired as free)
        if (lease.spec.holder_identity or "") != self.identity:
            self._draining.pop(shard, None)
            if self.owns_shard(shard):
                log.warning("%s no longer holds shard lease %s", self.identity, self.names[shard])
                self._change(lost=[shard])
            return lease
        sent = time.monotonic()
        annotations = self._kept(lease, sent)
        written = self._write(shard, lease, self._spec(lease, taking=False), annotations)
        if written is None:  # most likely a conflict (a wanted-by write): read again and retry once
            lease = self._read(shard)
            if lease is _MISSING or lease is None or not (self.owns_shard(shard) or shard in self._draining):
                return lease
            if (lease.spec.holder_identity or "") != self.identity:
                return self._renew(shard, lease)  # records the loss
            sent = time.monotonic()
            written = self._write(shard, lease, self._spec(lease, taking=False), self._kept(lease, sent))
        if written is None:
            return lease
        self._renewed[shard] = sent
        self._observe(shard, written)
        return written

    def _kept(self, lease: Any, now: float) -> dict[str, str]:
        """The Lease's annotations to write back: a wanted-by wish only while it is fresh."""
        annotations = _annotations(lease)
        if WANTED_BY in annotations and not self._fresh_wish(lease, now):
            del annotations[WANTED_BY]
        return annotations

    def _acquire(self, shard: int, lease: Any) -> None:
        sent = time.monotonic()
        annotations = {k: v for k, v in _annotations(lease).items() if k != WANTED_BY}
        written = self._write(shard, lease, self._spec(lease, taking=True), annotations)
        if written is None:
            return
        self._renewed[shard] = sent
        self._observe(shard, written)
        log.info("%s acquired shard lease %s", self.identity, self.names[shard])
        self._change(gained=[shard])

    def _release(self, shard: int, lease: Any, why: str) -> None:
        """Stop the shard's work first; keep (renew) its Lease while scans of it still run, so the next
        owner never scans a version this replica is scanning; then hand it over (``_hand_over``)."""
        log.info("%s releasing shard lease %s (%s)", self.identity, self.names[shard], why)
        self._change(lost=[shard])
        self._draining[shard] = time.monotonic() + self.drain_seconds
        if not self.busy(shard):
            self._hand_over(shard, lease)

    def _hand_over(self, shard: int, lease: Any) -> None:
        """Empty the Lease's holder so another replica takes the shard at once."""
        self._draining.pop(shard, None)
        self._renewed.pop(shard, None)
        if lease is not None and lease is not _MISSING:
            self._release_write(shard, lease)

    def _release_write(self, shard: int, lease: Any = None) -> None:
        from kubernetes import client

        if lease is None:
            lease = self._read(shard)
            if lease is None or lease is _MISSING:
                return
        if (lease.spec.holder_identity or "") != self.identity:
            return
        spec = client.V1LeaseSpec(
            holder_identity="",
            lease_duration_seconds=1,
            acquire_time=lease.spec.acquire_time,
            renew_time=_now_utc(),
            lease_transitions=lease.spec.lease_transitions or 0,
        )
        annotations = {k: v for k, v in _annotations(lease).items() if k != WANTED_BY}
        self._write(shard, lease, spec, annotations)

    def _ask(self, leases: dict[int, Any]) -> None:
        """Write our identity into a Lease of the busiest live holder (``_observe`` ignores such writes
        when judging expiry: a dead holder's Lease still runs out)."""
        counts: dict[str, list[int]] = {}
        for shard, holder in self._holders.items():
            counts.setdefault(holder, []).append(shard)
        if not counts:
            return
        busiest, shards = max(counts.items(), key=lambda item: (len(item[1]), item[0]))
        if len(shards) <= len(self.owned()) + 1:
            return
        shard = random.choice(shards)
        lease = leases.get(shard)
        if lease is None or lease is _MISSING:
            return
        self._asked = time.monotonic()
        annotations = dict(_annotations(lease))
        annotations[WANTED_BY] = f"{self.identity} {random.getrandbits(32):08x}"
        if self._write(shard, lease, lease.spec, annotations) is not None:
            log.info("%s asked %s for shard lease %s", self.identity, busiest, self.names[shard])


_MISSING: Any = object()


def _annotations(lease: Any) -> dict[str, str]:
    if lease is None or lease is _MISSING or lease.metadata is None:
        return {}
    return dict(lease.metadata.annotations or {})
