"""HostFacts probe details that do not need a particular kernel."""

from __future__ import annotations

import sandbox.host as host
import sandbox.syscalls.probes as linux


def test_overlay_not_registered_yet_is_asked_of_the_kernel(monkeypatch):
    """A module tree outside /lib/modules (the kvm-run guest): the root probe asks fsopen."""
    monkeypatch.setattr(host, "_read", lambda path, default="": "nodev\ttmpfs\n")
    monkeypatch.setattr(host.platform, "release", lambda: "0.0-no-such-release")
    asked = []
    monkeypatch.setattr(linux, "filesystem_available", lambda name: asked.append(name) or True)
    monkeypatch.setattr(host.os, "geteuid", lambda: 0)
    assert host._filesystem_available("overlay") and asked == ["overlay"]
    monkeypatch.setattr(host.os, "geteuid", lambda: 1000)  # no fsopen without root
    assert not host._filesystem_available("overlay")


def test_registered_filesystem_needs_no_syscall(monkeypatch):
    monkeypatch.setattr(host, "_read", lambda path, default="": "nodev\toverlay\n")
    monkeypatch.setattr(linux, "filesystem_available", lambda name: 1 / 0)
    assert host._filesystem_available("overlay")
