"""The threaded worker's accept gate (platform_api.gunicorn_worker): a worker with every
thread busy reports no room for new connections, except one turn per HOLD_BACK."""

from __future__ import annotations

import time
from types import SimpleNamespace

from platform_api import gunicorn_worker
from platform_api.gunicorn_worker import BalancedThreadWorker


def gate(threads: int, busy: int) -> BalancedThreadWorker:
    worker = object.__new__(BalancedThreadWorker)
    worker.cfg = SimpleNamespace(threads=threads)
    worker._busy = busy
    worker._held_since = 0.0
    worker.worker_connections = 1000
    return worker


def test_a_worker_with_a_free_thread_accepts_up_to_its_limit():
    assert gate(threads=4, busy=0).worker_connections == 1000
    assert gate(threads=4, busy=3).worker_connections == 1000


def test_a_busy_worker_holds_back_then_takes_one_turn(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(gunicorn_worker.time, "monotonic", lambda: now[0])
    worker = gate(threads=4, busy=4)
    assert worker.worker_connections == 0, "all threads busy: leave the connection to a sibling"
    now[0] += gunicorn_worker.HOLD_BACK / 2
    assert worker.worker_connections == 0
    now[0] += gunicorn_worker.HOLD_BACK
    assert worker.worker_connections == 1000, "held back long enough: the backlog must not starve"
    assert worker.worker_connections == 0, "one turn, then holding back again"
    worker._busy = 3
    assert worker.worker_connections == 1000, "a thread is free again"


def test_the_gate_reads_a_real_clock():
    worker = gate(threads=1, busy=1)
    assert worker.worker_connections == 0
    time.sleep(gunicorn_worker.HOLD_BACK * 2)
    assert worker.worker_connections == 1000
