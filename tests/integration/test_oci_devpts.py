"""The container's own /dev/pts and its console, on the real kernel and through real podman.

With a devpts mount in the bundle (podman's config.json always lists one)
the container gets a devpts instance of its own at /dev/pts and /dev/ptmx ->
pts/ptmx; with ``process.terminal`` its console is a pty of that instance,
opened by the payload itself, whose master reaches the engine through the
console socket (runc's behaviour). Checked from inside by a static probe
(tests/probes/static/ptyprobe.c): the payload's stdio is /dev/pts/0 and its
controlling terminal, it can make ptys of its own, it holds no master, and
the instance is neither the host's nor another container's.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from ocikit import (
    DEVPTS,
    ConsoleSocket,
    Runtime,
    build_ptyprobe,
    check_inside,
    config,
    make_rootfs,
    parse,
    run_with_console,
)

pytestmark = pytest.mark.requires("root", "userns")


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return build_ptyprobe(tmp_path_factory.mktemp("ptyprobe"))


# ---------------------------------------------------------- runtime level ----


@pytest.mark.parametrize("launcher", ["native", "python"])
def test_console_is_a_pty_of_the_containers_own_devpts(
    launcher, probe, tmp_path, no_leftovers
) -> None:
    """The engine's master is a ptmx of the container's instance, never the host's;
    inside, stdio is /dev/pts/0 and the controlling terminal; exit codes pass."""
    out, console = run_with_console(
        tmp_path, ["/bin/sh", "-c", "/usr/bin/ptyprobe && exit 3"], launcher, probe
    )
    assert "error" not in out, out
    assert os.WIFEXITED(out["status"]) and os.WEXITSTATUS(out["status"]) == 3, out
    assert console.name == "/dev/pts/0"
    got = parse(console.output.decode(errors="replace"))
    check_inside(got)


@pytest.mark.parametrize("launcher", ["native", "python"])
def test_a_terminal_without_devpts_is_refused_at_create(launcher, probe, tmp_path) -> None:
    bundle = tmp_path / "bundle"
    make_rootfs(bundle / "rootfs")
    cfg = config(["true"])
    cfg["process"]["terminal"] = True
    (bundle / "config.json").write_text(json.dumps(cfg))
    console = ConsoleSocket(tmp_path / "console.sock")
    rt = Runtime(tmp_path / "rt")
    p = rt(
        "create", "--bundle", str(bundle), "--console-socket", console.path, "c1",
        env={**os.environ, "SANDBOX_LAUNCHER": launcher}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    console.sock.close()
    assert p.returncode != 0
    assert "process.terminal needs a devpts mount at /dev/pts" in p.stdout + p.stderr
    assert not (tmp_path / "rt" / "c1").exists()


def test_without_a_terminal_the_container_still_has_its_own_devpts(
    probe, tmp_path, no_leftovers
) -> None:
    """No console (stdio are pipes): /dev/pts is still the container's, empty but
    for ptmx, and the payload can make ptys there."""
    bundle = tmp_path / "bundle"
    make_rootfs(bundle / "rootfs")
    shutil.copy2(probe, bundle / "rootfs/usr/bin/ptyprobe")
    cfg = config(["/usr/bin/ptyprobe"])
    cfg["mounts"].append(DEVPTS)
    (bundle / "config.json").write_text(json.dumps(cfg))
    rt = Runtime(tmp_path / "rt")
    p = rt("run", "--bundle", str(bundle), "c1", stdin=subprocess.DEVNULL, check=True)
    got = parse(p.stdout)
    assert got["stdin"] == "not-a-tty" and got["ctty"] == "0", got
    assert set(got["list"].split()) == {"ptmx"}, got  # none of the host's ptys
    assert int(got["pts"]) != os.stat("/dev/pts").st_dev
    assert got["own"].split() == ["/dev/pts/0", "1"] and got["same"] == "1", got


# ------------------------------------------------------------------ podman ----

IMAGE = "localhost/sbx-busybox-pty:test"


@pytest.fixture(scope="module")
def podman(tmp_path_factory, probe):
    from test_oci_engines import Podman

    if not shutil.which("podman") or not shutil.which("script"):
        pytest.skip("podman or script is not installed (scripts/setup.sh installs them)")
    base = tmp_path_factory.mktemp("podman-pty")
    root = make_rootfs(base / "rootfs")
    shutil.copy2(probe, root / "usr/bin/ptyprobe")
    tar = base / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(root, arcname=".")
    p = Podman(base)
    out = p("import", str(tar), IMAGE)
    assert out.returncode == 0, out.stderr
    yield p
    p("rm", "-a", "-f")
    p("rmi", "-a", "-f")
    subprocess.run(["umount", "-R", str(base / "storage" / "overlay")], capture_output=True)


def under_script(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` on a pty of the host's (as a user's shell would): podman -t needs one."""
    return subprocess.run(
        ["script", "-qec", shlex.join(cmd), "/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_podman_run_t(podman) -> None:
    """`podman run -t`: tty prints /dev/pts/0, /dev/ptmx is the container's, a program
    makes its own pty, the exit code passes, and the host's ptys (script's own,
    on the host's devpts) are not in the container's /dev/pts."""
    from test_oci_engines import ULIMITS

    script = (
        "busybox tty; test -c /dev/ptmx && echo ptmx-ok; ls -l /dev/ptmx; /usr/bin/ptyprobe; exit 5"
    )
    cmd = podman.cmd("run", "--rm", "-t", "--network", "none", *ULIMITS, IMAGE, "sh", "-c", script)
    p = under_script(cmd)
    assert p.returncode == 5, p.stdout + p.stderr
    text = p.stdout.replace("\r", "")
    assert text.splitlines()[0] == "/dev/pts/0", text
    assert "ptmx-ok" in text and "-> pts/ptmx" in text, text
    check_inside(parse(text))
    rec = podman.records()[-1]
    assert rec["exit_code"] == 5, rec
    assert any("/dev/pts: gid=5 is not mapped" in n for n in rec["notes"]), rec["notes"]


def test_podman_exec_t_and_a_second_container(podman) -> None:
    """`podman exec -t` gets a pty of the same container's instance (/dev/pts/1 beside
    the first process's /dev/pts/0); another container's instance is another."""
    from test_oci_engines import ULIMITS

    run = podman.cmd("run", "-d", "-t", "--name", "sbx-pts", "--network", "none", *ULIMITS,
                     IMAGE, "sleep", "60")  # fmt: skip
    p = under_script(run)
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        e = under_script(podman.cmd("exec", "-t", "sbx-pts", "/usr/bin/ptyprobe"))
        assert e.returncode == 0, e.stdout + e.stderr
        first = parse(e.stdout)
        check_inside(first, first="/dev/pts/1")
        other = under_script(
            podman.cmd("run", "--rm", "-t", "--network", "none", *ULIMITS, IMAGE,
                       "/usr/bin/ptyprobe")
        )  # fmt: skip
        assert other.returncode == 0, other.stdout + other.stderr
        second = parse(other.stdout)
        check_inside(second)
        assert first["pts"] != second["pts"], "two containers share a devpts instance"
        assert set(second["list"].split()) == {"ptmx", "0"}, second  # not sbx-pts's 0 and 1
    finally:
        podman("rm", "-f", "-t", "0", "sbx-pts")
