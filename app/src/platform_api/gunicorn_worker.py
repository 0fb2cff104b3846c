"""gunicorn's threaded worker, with accepting left to an idle sibling while busy.

Workers share one listening socket and race for each new connection. Kept-alive
connections then stay where they landed: when a burst of clients connects at
once, one worker can end up with most of them and serve them on its own core
while the other worker idles (measured with bench/app_health.py: liveness at
3,700 instead of 11,000 req/s, depending on how the first connections fell).
This worker holds back from accepting while all of its threads are busy, so a
new connection goes to a worker that has a thread free. It holds back for at
most HOLD_BACK seconds at a time: when every worker is busy, connections still
waiting in the backlog are taken a few milliseconds later instead of starving
behind the kept-alive ones. Nothing else changes: limits, keep-alive, graceful stop.
"""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

HOLD_BACK = 0.005


class BalancedThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs) -> None:
        self._busy = 0
        self._held_since = 0.0
        super().__init__(*args, **kwargs)

    # ThreadWorker.run() accepts while nr_conns < worker_connections: a busy
    # worker reports no room, an idle one the configured limit.
    @property
    def worker_connections(self) -> int:
        if self._busy < self.cfg.threads:
            self._held_since = 0.0
            return self._limit
        now = time.monotonic()
        if not self._held_since:
            self._held_since = now
        elif now - self._held_since >= HOLD_BACK:
            self._held_since = now  # one turn of accepting, then hold back again
            return self._limit
        return 0

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._limit = value

    def enqueue_req(self, conn) -> None:
        self._busy += 1
        super().enqueue_req(conn)

    def finish_request(self, conn, fs) -> None:
        self._busy -= 1
        super().finish_request(conn, fs)
