"""Network attacks: a raw socket, and a service that listens only on the host's loopback.

The test listens on the host, on 127.0.0.1 (TCP) and on an abstract unix
socket, and the payload tries to talk to it. All run the attack matrix of
escape_kit (see there).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
from escape_kit import E, attack, judge, matrix

pytestmark = pytest.mark.requires("root", "gcc")

BANNER = b"host-only service\n"


@pytest.fixture(scope="module")
def host_service() -> Iterator[tuple[int, str]]:
    """(TCP port on 127.0.0.1, abstract unix socket name), both answering BANNER."""
    tcp = socket.create_server(("127.0.0.1", 0))
    name = f"sbx-escape-{os.urandom(4).hex()}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(b"\0" + name.encode())
    unix.listen()

    def serve(sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed at teardown
                return
            with conn:
                conn.sendall(BANNER)

    for sock in (tcp, unix):
        threading.Thread(target=serve, args=(sock,), daemon=True).start()
    yield tcp.getsockname()[1], name
    for sock in (tcp, unix):
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.mark.requires("landlock>=4")
@matrix("namespaces", "seccomp", "landlock")
def test_tcp_to_the_hosts_loopback(probes, tmp_path, host_service, ablate):
    """connect(127.0.0.1:PORT) to a service of the host's.

    Stopped by each of three layers alone: the network namespace (its own
    loopback, where nothing listens: ECONNREFUSED), seccomp (only AF_UNIX
    sockets: EAFNOSUPPORT) and Landlock (no TCP connect, ABI >= 4: EACCES).
    """
    port, _ = host_service
    r = attack(probes["escape"], ["tcp", str(port)], ablate, tmp_path)
    stoppers = {"namespaces": E.ECONNREFUSED, "seccomp": E.EAFNOSUPPORT, "landlock": E.EACCES}
    if judge(r, ablate, stoppers):
        assert r.out.encode() == BANNER


@pytest.mark.requires("landlock>=6")
@matrix("namespaces", "landlock")
def test_abstract_unix_socket_of_the_host(probes, tmp_path, host_service, ablate):
    """connect() to an abstract unix socket of the host's (the kind X11 and D-Bus use).

    Abstract names belong to the network namespace, so the namespaces layer
    stops it alone (ECONNREFUSED), and so does Landlock's scoping of abstract
    sockets to the domain (ABI >= 6: EPERM). Seccomp allows AF_UNIX.
    """
    _, name = host_service
    r = attack(probes["escape"], ["abstract", name], ablate, tmp_path)
    if judge(r, ablate, {"namespaces": E.ECONNREFUSED, "landlock": E.EPERM}):
        assert r.out.encode() == BANNER


@matrix("capabilities", "seccomp")
def test_raw_socket(probes, tmp_path, ablate):
    """socket(AF_INET, SOCK_RAW): forged packets, sniffing.

    Stopped by seccomp alone (only AF_UNIX: EAFNOSUPPORT) and by the
    capability layer alone (CAP_NET_RAW over the network namespace: EPERM).
    With both off it works in the run's own network namespace; in the host's
    (namespaces off too) the kernel refuses it, that namespace not being the
    run's user namespace's.
    """
    r = attack(probes["escape"], ["raw"], ablate, tmp_path)
    judge(r, ablate, {"capabilities": E.EPERM, "seccomp": E.EAFNOSUPPORT})
