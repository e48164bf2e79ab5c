"""Which AppArmor/Landlock differences apply to a policy at an ABI (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.apparmor.compare import DOC, differences
from sandbox.policy.load import load_profile
from sandbox.policy.model import Policy


def keys(policy: Policy, abi: int) -> list[str]:
    return [d.key for d in differences(policy, abi)]


def policy(**kw: Any) -> Policy:
    base = load_profile("strict").policy.model_dump()
    for section, values in kw.items():
        base[section] = {**base[section], **values}
    return Policy.model_validate(base)


@pytest.mark.parametrize(
    ("abi", "expect"),
    [
        (0, ["no-landlock"]),
        (1, ["mmap-exec", "refer", "truncate", "host-stdio"]),
        (2, ["mmap-exec", "truncate", "host-stdio"]),
        (3, ["mmap-exec", "host-stdio"]),
        (7, ["mmap-exec", "host-stdio"]),
    ],
)
def test_strict_at_each_abi(abi, expect):
    assert keys(load_profile("strict").policy, abi) == expect


def test_every_difference_says_both_sides_and_links_the_doc():
    for abi in (0, 1, 2, 7):
        for d in differences(policy(network={"mode": "none"}), abi):
            assert d.summary and d.apparmor and d.landlock
            assert d.doc == f"{DOC}#{d.key}"


def test_mmap_exec_names_a_writable_non_exec_tree():
    (d,) = [d for d in differences(load_profile("strict").policy, 7) if d.key == "mmap-exec"]
    assert "/tmp" in d.example and "ld.so" in d.example


def test_mmap_exec_absent_when_every_readable_tree_is_executable():
    p = policy(filesystem={"read_paths": ["/usr"], "exec_paths": ["/usr", "/box", "/tmp"]})
    assert "mmap-exec" not in keys(p, 7)


def test_truncate_example_only_with_a_read_only_proc():
    (d,) = [d for d in differences(load_profile("strict").policy, 2) if d.key == "truncate"]
    assert d.example == "truncate(2) of /proc/self/comm"
    p = policy(filesystem={"read_paths": ["/usr", "/etc"]})
    (d,) = [d for d in differences(p, 2) if d.key == "truncate"]
    assert d.example == ""


def test_deny_and_allow_extra_rules():
    p = policy(apparmor={"extra_rules": ["deny /etc/shadow r,", "/srv/** r,"]})
    ks = keys(p, 7)
    assert "deny-inside-tree" in ks and "extra-allow" in ks
    (d,) = [d for d in differences(p, 7) if d.key == "deny-inside-tree"]
    assert "deny /etc/shadow r," in d.example


def test_tcp_only_when_seccomp_lets_inet_sockets_exist():
    assert "tcp" not in keys(load_profile("strict").policy, 7)  # sockets_local: AF_UNIX only
    p = policy(seccomp={"allow": ["socket", "connect"]})
    assert "tcp" in keys(p, 4) and "tcp" not in keys(p, 3)


def test_network_none_sockets():
    p = policy(network={"mode": "none"})
    (d,) = [d for d in differences(p, 7) if d.key == "sockets"]
    assert "AF_UNIX" in d.apparmor


def test_exec_path_inside_a_writable_tree_follows_names_under_apparmor():
    p = policy(filesystem={"exec_paths": ["/usr", "/box/bin"], "writable": ["/box", "/tmp"]})
    (d,) = [d for d in differences(p, 7) if d.key == "names-vs-inodes"]
    assert "/box/bin" in d.example
    assert "names-vs-inodes" not in keys(load_profile("strict").policy, 7)  # /box itself is exec
