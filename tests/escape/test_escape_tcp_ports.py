"""network.tcp_ports: TCP on the run's loopback, on the listed ports only.

Landlock (ABI >= 4) is what keeps every other port closed: a bind to an
unlisted port is EACCES with it, and works with it switched off. Without
tcp_ports, seccomp refuses inet sockets altogether (EAFNOSUPPORT).
"""

from __future__ import annotations

import pytest
from escape_kit import E, attack, judge, matrix
from sbxtest import run_cli

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]


@pytest.mark.requires("landlock>=4")
def test_a_listed_port_serves_a_client_in_the_same_run(probes, tmp_path):
    r = run_cli(
        ["exec", "--tcp-port", "8080", "--", str(probes["tcpports"]), "pair", "8080"],
        tmp=tmp_path,
    )
    assert r.rc == 0, r.err
    assert r.out == "ping\n"
    assert "TCP only on ports 8080" in r.record["enforcement"]["landlock"]["detail"]


@pytest.mark.requires("landlock>=4")
@matrix("landlock")
def test_an_unlisted_port_is_closed(probes, tmp_path, ablate):
    r = attack(
        probes["tcpports"], ["bind", "9090"], ablate, tmp_path, options=["--tcp-port", "8080"]
    )
    judge(r, ablate, {"landlock": E.EACCES})


def test_without_tcp_ports_there_is_no_inet_socket(probes, tmp_path):
    r = run_cli(["exec", "--", str(probes["tcpports"]), "bind", "8080"], tmp=tmp_path)
    assert r.rc == E.EAFNOSUPPORT, r.err
    assert r.record["verdict"] == "RUNTIME_ERROR"


def test_tcp_ports_need_the_loopback_network(tmp_path):
    prof = tmp_path / "p.toml"
    prof.write_text('extends = "strict"\n[network]\nmode = "none"\ntcp_ports = [80]\n')
    r = run_cli(["exec", "--profile", str(prof), "--", "/bin/true"], tmp=tmp_path)
    assert r.rc == 125 and "tcp_ports needs network.mode" in r.err
