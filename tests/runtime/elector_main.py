"""One leader-election candidate, run as its own process by test_leader_election.py.

Usage: python elector_main.py API_URL IDENTITY. Prints ``LEADING <identity> <unix time>`` when it starts
leading and keeps "reconciling" until the process ends. Losing the lease ends the process through
``mlgate.controller.runtime.leader``'s default (exit status 3).
"""

from __future__ import annotations

import sys
import time

from kubernetes import client

from mlgate.controller.runtime.leader import Elector, LeaderSettings

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3, 1.5, 1.0


def main() -> None:
    url, identity = sys.argv[1], sys.argv[2]
    configuration = client.Configuration()
    configuration.host = url
    settings = LeaderSettings(
        namespace="mlgate",
        identity=identity,
        lease_duration=LEASE_DURATION,
        renew_deadline=RENEW_DEADLINE,
        retry_period=RETRY_PERIOD,
    )

    def lead() -> None:
        print(f"LEADING {identity} {time.time():.3f}", flush=True)
        while True:
            time.sleep(0.05)

    print(f"READY {identity} {time.time():.3f}", flush=True)
    Elector(settings, lead, api=client.ApiClient(configuration)).run()


if __name__ == "__main__":
    main()
