"""Shared fixtures for the testinfra tests every Molecule scenario runs.

The tests take the host's inventory groups from Ansible, so one test file
serves an all-in-one host and a multi-host scenario alike.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# Under Molecule's verifier only the host tests run; `make unit` runs tests/unit.
collect_ignore = ["unit"] if os.environ.get("MOLECULE_SCENARIO_NAME") else []


@pytest.fixture(scope="module")
def hostvars(host) -> dict:
    """The host's inventory variables (group_names, group_vars)."""
    return host.backend.get_variables()


@pytest.fixture(scope="module")
def group_names(hostvars) -> set[str]:
    return set(hostvars.get("group_names", []))


@pytest.fixture(scope="module")
def host_ip(host) -> str:
    """The host's address on its container network, as the controller sees it."""
    addresses = [a for a in host.interface("eth0").addresses if ":" not in a]
    assert addresses, "the host has no IPv4 address on eth0"
    return addresses[0]


@contextmanager
def listener(host, port: int) -> Iterator[None]:
    """Run a throwaway TCP listener on the host, as a transient systemd unit."""
    unit = f"probe-{port}-{uuid.uuid4().hex[:8]}"
    host.check_output(
        f"systemd-run --unit={unit} --collect -p RuntimeMaxSec=60 "
        f'python3 -c \'import socket,time;s=socket.create_server(("0.0.0.0",{port}));'
        f"s.listen();time.sleep(60)'"
    )
    try:
        for _ in range(50):
            if host.socket(f"tcp://0.0.0.0:{port}").is_listening:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"probe listener on port {port} did not start")
        yield
    finally:
        host.run(f"systemctl stop {unit}")


def tcp_outcome(address: str, port: int, timeout: float = 2.0) -> str:
    """Connect from the controller: 'open', 'refused' (RST) or 'dropped' (no answer)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "dropped"


@pytest.fixture
def probe():
    """(listener, tcp_outcome) for firewall behaviour tests."""
    return listener, tcp_outcome
