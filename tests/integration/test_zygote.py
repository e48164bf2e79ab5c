"""The CLI's zygote: ``sandbox exec`` forked from a warm process of the caller's own key.

Everything else the CLI does is checked by the rest of the suite, which runs
the CLI through its entry point (``sandbox.cli.fast``), zygote included.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sbxtest import run_cli, sandbox_cmd

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
            f"import sys; sys.argv = ['z', {path!r}]; from sandbox.cli.zygote import main; main()",
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


def _runtime(tmp_path: Path, owner: int = 0) -> tuple[Path, dict[str, str]]:
    """A runtime directory of its own (root's SANDBOX_RUNTIME_DIR) and the env naming it."""
    rt = tmp_path / f"rt-{owner}"
    rt.mkdir(mode=0o700)
    os.chown(rt, owner, owner)
    return rt, {"SANDBOX_RUNTIME_DIR": str(rt), "SANDBOX_ZYGOTE_IDLE": "3"}


def test_concurrent_calls_all_get_their_status(tmp_path):
    """Calls ending in one batch of the zygote's events never take it down (round 2)."""
    _, env = _runtime(tmp_path)
    argv = [*sandbox_cmd(), "exec", "-q", "--", "/bin/sh", "-c", "echo $0", "hi"]
    procs = [
        subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE, cwd=tmp_path)
        for _ in range(12)
    ]
    outs = [(p.communicate(timeout=120)[0], p.returncode) for p in procs]
    assert outs == [(b"hi\n", 0)] * 12


def test_help_leaves_nothing_for_the_next_call(tmp_path):
    """The zygote's prewarm parses the caller's argv: --help's text never reaches a later
    call's stdout."""
    _, env = _runtime(tmp_path)
    assert run_cli(["exec", "--help"], tmp=tmp_path, env=env, meta=False).rc == 0
    for _ in range(2):
        r = run_cli(["exec", "-q", "--", "/bin/echo", "42"], tmp=tmp_path, env=env)
        assert (r.rc, r.out) == (0, "42\n")


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8, 9])
def test_a_meta_fd_of_any_number_gets_the_record(tmp_path, n):
    """Whatever number the caller's record fd has, it never lands on one of the fork's."""
    _, env = _runtime(tmp_path)
    out = tmp_path / "record.json"
    script = f'exec {n}>"$1"; exec {" ".join(sandbox_cmd())} exec -q --meta-fd {n} -- /bin/true'
    p = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(out)],
        env={**os.environ, **env},
        cwd=tmp_path,
        timeout=120,
    )
    assert p.returncode == 0 and json.loads(out.read_text())["verdict"] == "OK"


def test_a_runtime_dir_of_another_user_is_never_used(tmp_path):
    """Another uid owning the runtime directory could swap what is below it: run here."""
    rt, env = _runtime(tmp_path, owner=5001)
    r = run_cli(["exec", "--", "/bin/true"], tmp=tmp_path, env=env)
    assert r.rc == 0
    assert not (rt / "zygote").exists()


def test_a_restricted_caller_runs_everything_itself(tmp_path):
    """no_new_privs (and so maybe a Landlock domain no file shows): never a zygote's rights."""
    rt, env = _runtime(tmp_path)
    p = subprocess.run(
        ["setpriv", "--no-new-privs", *sandbox_cmd(), "exec", "--", "/bin/true"],
        env={**os.environ, **env},
        cwd=tmp_path,
        timeout=120,
    )
    assert p.returncode == 0
    assert list(rt.glob("zygote/*.sock")) == []
    assert run_cli(["exec", "--", "/bin/true"], tmp=tmp_path, env=env).rc == 0
    assert list(rt.glob("zygote/*.sock")), "an unrestricted caller does use one"


def test_the_key_holds_the_callers_capabilities():
    """A root caller that dropped capabilities never borrows a full-root zygote's."""
    status = Path("/proc/self/status").read_text()
    cap_eff = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    assert repr(cap_eff) in fast.key()


DROP = ["setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]


def _zygote_socket(rt: Path, env: dict[str, str], tmp_path: Path) -> tuple[Path, str]:
    """Start the zygote of this key; its socket and the key (as the real client has it)."""
    assert run_cli(["exec", "--", "/bin/true"], tmp=tmp_path, env=env).rc == 0
    (sock,) = rt.glob("zygote/*.sock")
    key = subprocess.run(
        [sys.executable, "-c", "from sandbox.cli.fast import key; print(key(), end='')"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sock, key


def test_a_weaker_caller_of_the_same_uid_is_not_served(tmp_path):
    """No capabilities and no_new_privs, the zygote's own key sent by hand: the zygote
    reads the caller's rights from /proc and hangs up (the fixes' re-attack, B)."""
    rt, env = _runtime(tmp_path)
    sock, key = _zygote_socket(rt, env, tmp_path)
    forger = (
        "import marshal, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        "s.connect(sys.argv[1])\n"
        "try:\n"
        "    s.send(marshal.dumps({'key': sys.argv[2], 'argv': ['exec', '--', '/bin/true'],"
        " 'cwd': '/', 'env': {}, 'umask': 0o22, 'fds': []}))\n"
        "    print(repr(s.recv(4096)))\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
    )
    p = subprocess.run(
        [*DROP, sys.executable, "-c", forger, str(sock), key],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.stdout.strip() in ("b''", "refused 32", "refused 104"), (p.stdout, p.stderr)


def test_a_weaker_process_cannot_stand_in_for_the_zygote(tmp_path):
    """It replaces the socket with its own: the caller checks the zygote's rights, runs the
    command itself, and the stand-in gets no request (the fixes' re-attack, C)."""
    rt, env = _runtime(tmp_path)
    sock, _ = _zygote_socket(rt, env, tmp_path)
    got = tmp_path / "got"
    fake = (
        "import os, socket, sys\n"
        "os.unlink(sys.argv[1])\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        "s.bind(sys.argv[1]); s.listen(4); s.settimeout(30)\n"
        "print('ready', flush=True)\n"
        "c, _ = s.accept()\n"
        "open(sys.argv[2], 'wb').write(c.recv(1 << 20))\n"
    )
    proc = subprocess.Popen(
        [*DROP, sys.executable, "-c", fake, str(sock), str(got)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        r = run_cli(["exec", "-q", "--", "/bin/false"], tmp=tmp_path, env=env)
        assert r.rc == 1, r.err
        proc.wait(40)
    finally:
        proc.kill()
        proc.wait()
    assert not got.exists() or got.read_bytes() == b""
