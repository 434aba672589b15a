"""Free ports: side-by-side test runs draw from ranges of their own."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack.processes import free_port


def test_a_run_with_a_port_range_gets_a_bindable_port_from_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTROM_TEST_PORTS", "21000-21009")
    for _ in range(5):
        port = free_port()
        assert 21000 <= port <= 21009
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_range_with_every_port_taken_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTROM_TEST_PORTS", "21030-21032")
    held = []
    try:
        for port in range(21030, 21033):
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            s.listen()
            held.append(s)
        with pytest.raises(RuntimeError, match="no free port in ESTROM_TEST_PORTS=21030-21032"):
            free_port()
    finally:
        for s in held:
            s.close()


def test_without_a_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESTROM_TEST_PORTS", raising=False)
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert low <= free_port() <= high


def test_a_port_is_never_handed_out_twice_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine binds its ports seconds after they were chosen: nothing chosen meanwhile gets one."""
    monkeypatch.setenv("ESTROM_TEST_PORTS", "21020-21027")
    ports = [free_port() for _ in range(8)]
    assert sorted(ports) == list(range(21020, 21028))
    with pytest.raises(RuntimeError, match="no free port in ESTROM_TEST_PORTS=21020-21027"):
        free_port()
