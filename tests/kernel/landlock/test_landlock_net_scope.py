"""Landlock on the real kernel: TCP (ABI 4) and IPC scoping (ABI 6), each beside its control.

The peers (a TCP listener, an abstract unix socket, a sleeping process) are
made by the test process, outside the child's Landlock domain.
"""

import errno
import os
import signal
import socket
import subprocess
import uuid

import pytest
from ll_harness import OK, denied_only_by_landlock, outcome


@pytest.fixture
def tcp_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def connect_tcp(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
        c.connect(("127.0.0.1", port))


def bind_tcp():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
        c.bind(("127.0.0.1", 0))


def test_tcp_connect_to_loopback(trees, abi, tcp_listener):
    a = trees.artifact(abi)
    if abi >= 4:
        denied_only_by_landlock(lambda: connect_tcp(tcp_listener), a, errno.EACCES)
    else:
        assert "LANDLOCK_ACCESS_NET_CONNECT_TCP" in a.missing
        assert outcome(lambda: connect_tcp(tcp_listener), a) == OK


def test_tcp_bind(trees, abi):
    a = trees.artifact(abi)
    if abi >= 4:
        denied_only_by_landlock(bind_tcp, a, errno.EACCES)
    else:
        assert outcome(bind_tcp, a) == OK


@pytest.fixture
def abstract_listener():
    name = f"\0sandbox-landlock-test-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(name)
    s.listen(16)
    yield name
    s.close()


def connect_unix(name):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(name)


def test_abstract_unix_connect_outside_the_domain(trees, abi, abstract_listener):
    a = trees.artifact(abi)
    if abi >= 6:
        denied_only_by_landlock(lambda: connect_unix(abstract_listener), a, errno.EPERM)
    else:
        assert "LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET" in a.missing
        assert outcome(lambda: connect_unix(abstract_listener), a) == OK


def test_abstract_unix_inside_the_domain_still_works(trees, abi):
    def pair():
        name = f"\0sandbox-landlock-inner-{os.getpid()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(name)
            s.listen(1)
            connect_unix(name)

    assert outcome(pair, trees.artifact(abi)) == OK


@pytest.fixture
def victims():
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_kill_of_a_process_outside_the_domain(trees, abi, victims):
    a = trees.artifact(abi)
    first, second = victims
    if abi >= 6:
        got = outcome(lambda: os.kill(first.pid, signal.SIGTERM), a)
        assert got == errno.EPERM
        assert first.poll() is None, "the victim died although kill() was refused"
    else:
        assert "LANDLOCK_SCOPE_SIGNAL" in a.missing
        assert outcome(lambda: os.kill(first.pid, 0), a) == OK  # not scoped below ABI 6
    # control: the same kill without Landlock reaches its target
    assert outcome(lambda: os.kill(second.pid, signal.SIGTERM), None) == OK
    assert second.wait(timeout=10) == -signal.SIGTERM


def test_signals_inside_the_domain_still_work(trees, abi):
    assert outcome(lambda: os.kill(os.getpid(), 0), trees.artifact(abi)) == OK
