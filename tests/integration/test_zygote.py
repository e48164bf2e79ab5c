"""The CLI's zygote: ``sandbox exec`` forked from a warm process of the caller's own key.

Everything else the CLI does is checked by the rest of the suite, which runs
the CLI through its entry point (``sandbox.cli.fast``), zygote included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sbxtest import run_cli

from sandbox.cli import fast
from sandbox.fingerprint import fingerprint

pytestmark = pytest.mark.requires("root")


def _zygotes(idle: str) -> list[int]:
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"sandbox.cli.zygote" in cmd and f"SANDBOX_ZYGOTE_IDLE={idle}".encode() in env:
            out.append(int(pid))
    return out


def test_a_run_through_the_zygote_matches_one_in_process(tmp_path):
    env = {"SANDBOX_ZYGOTE_IDLE": "5"}
    args = ["exec", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 7"]
    via = run_cli(args, tmp=tmp_path, env=env)
    here = run_cli(args, tmp=tmp_path, env={**env, "SANDBOX_ZYGOTE": "0"})
    assert _zygotes("5"), "the first call starts a zygote"
    assert (via.rc, via.out) == (here.rc, here.out) == (7, "out\n")
    assert "err" in via.err and via.record is not None and here.record is not None
    assert via.record["verdict"] == here.record["verdict"] == "RUNTIME_ERROR"
    assert via.record["policy_digest"] == here.record["policy_digest"]


def test_the_zygote_leaves_when_idle(tmp_path):
    env = {"SANDBOX_ZYGOTE_IDLE": "0.5"}
    assert run_cli(["exec", "--", "/bin/true"], tmp=tmp_path, env=env).rc == 0
    deadline = time.monotonic() + 10
    while _zygotes("0.5") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _zygotes("0.5")


def test_a_caller_with_another_key_is_refused(tmp_path):
    """A name collision never runs a call in a zygote made for other settings."""
    path = str(tmp_path / "z.sock")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; sys.argv = ['z', {path!r}]; "
            "from sandbox.cli.zygote import main; main()",
        ],
        env={**os.environ, "SANDBOX_ZYGOTE_IDLE": "3", "SANDBOX_ZYGOTE_KEY": "the-right-key"},
    )
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(path)
        import marshal

        sock.send(marshal.dumps({"key": "another-key", "argv": ["exec", "--", "/bin/true"]}))
        assert marshal.loads(sock.recv(4096)) == {"refused": True}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_a_source_edit_changes_the_key(tmp_path):
    tree = tmp_path / "sandbox"
    tree.mkdir()
    (tree / "a.py").write_text("x = 1\n")
    before = fingerprint(tree)
    (tree / "a.py").write_text("x = 22\n")
    assert fingerprint(tree) != before
    assert fingerprint(fast.PACKAGE_DIR) in fast.key()  # so an edit starts a new zygote
