"""network.tcp_ports rendered in every layer: Landlock NET_PORT rules, the seccomp group
with inet sockets, AppArmor's network rules; verify/explain/diff see them."""

from __future__ import annotations

import pytest

from sandbox.errors import PolicyError
from sandbox.landlock.rules import TCP, prepare
from sandbox.policy.load import load_profile


def tcp(*ports: int, base: str = "strict"):
    return load_profile(base, {"network": {"tcp_ports": list(ports)}}).policy


def test_ports_become_landlock_net_rules():
    p = tcp(8080, 0, 8080)
    art = prepare(p.filesystem, 7, tcp_ports=tuple(p.network.tcp_ports))
    assert [(r.port, r.access) for r in art.net_rules] == [(0, TCP), (8080, TCP)]
    assert "TCP only on ports 0, 8080" in art.detail
    none = prepare(p.filesystem, 7)
    assert none.net_rules == () and none.key != art.key
    assert prepare(p.filesystem, 3, tcp_ports=(8080,)).net_rules == ()  # no TCP rights at ABI 3


def test_ports_swap_in_the_inet_socket_group():
    groups = tcp(8080).seccomp.groups
    assert "sockets_tcp" in groups and "sockets_local" not in groups
    assert "sockets_local" in load_profile("strict").policy.seccomp.groups


def test_ports_need_loopback_and_a_valid_number():
    with pytest.raises(PolicyError, match=r"tcp_ports needs network\.mode"):
        load_profile("strict", {"network": {"mode": "none", "tcp_ports": [80]}})
    with pytest.raises(PolicyError, match="tcp_ports"):
        tcp(70000)


def test_apparmor_names_the_ports():
    from sandbox.apparmor.parser import ParserFeatures
    from sandbox.apparmor.render import prepare as render

    text = render(
        tcp(8080),
        program="/box/a",
        interpreter=None,
        parser_features=ParserFeatures(version=(3, 0, 8), abi="3.0", rules=frozenset()),
    )
    assert "network.tcp_ports 8080" in text.text
    assert "network inet stream," in text.text
