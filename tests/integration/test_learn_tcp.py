"""`sandbox learn` turns the TCP ports a program used into network.tcp_ports."""

from __future__ import annotations

import tomllib

import pytest
from sbxtest import run_cli

pytestmark = [
    pytest.mark.requires("root", "gcc", "landlock>=4"),
    pytest.mark.usefixtures("no_leftovers"),
]


def test_learned_ports_are_the_only_open_ones(probes, tmp_path):
    base = tmp_path / "base.toml"
    base.write_text('extends = "strict"\n[network]\ntcp_ports = [1]\n')  # inet sockets
    out = tmp_path / "learned.toml"
    learned = run_cli(
        [
            "learn",
            "--from",
            str(base),
            "-o",
            str(out),
            "--",
            str(probes["tcpports"]),
            "pair",
            "8080",
        ],
        tmp=tmp_path,
        meta=False,
    )
    assert learned.rc == 0, learned.err
    prof = tomllib.loads(out.read_text())
    assert prof["network"]["tcp_ports"] == [8080]
    assert "network.tcp_ports" in prof["replace"]  # the base's port 1 is not kept
    ok = run_cli(
        ["exec", "--profile", str(out), "--", str(probes["tcpports"]), "pair", "8080"], tmp=tmp_path
    )
    assert ok.rc == 0 and ok.out == "ping\n", ok.err
    other = run_cli(
        ["exec", "--profile", str(out), "--", str(probes["tcpports"]), "bind", "1"], tmp=tmp_path
    )
    assert other.rc == 13, other.err  # EACCES: Landlock
