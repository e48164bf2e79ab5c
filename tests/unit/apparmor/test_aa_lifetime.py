"""Profile lifetime on lock files in a tmpdir, with a fake profile store.

The real kernel side is covered by tests/guest/test_apparmor.py; here the
locking protocol is exercised with real flocks across processes.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sandbox.apparmor.lifetime import (
    Lifetime,
    ProfileHold,
    Released,
    _label_names,
    confined_tasks,
    hold,
    release,
    sweep,
)
from sandbox.apparmor.render import AppArmorArtifact
from sandbox.errors import SandboxInternalError, SetupError

NAME = "sbx_" + "a" * 32
OTHER = "sbx_" + "b" * 32


class FakeStore:
    """A profile store that records loads and removals."""

    def __init__(self, fail_load: bool = False) -> None:
        self.loaded: set[str] = set()
        self.log: list[tuple[str, str]] = []
        self.fail_load = fail_load

    def is_loaded(self, name: str) -> bool:
        return name in self.loaded

    def names(self) -> set[str]:
        return set(self.loaded)

    def load(self, text: str) -> None:
        if self.fail_load:
            raise SetupError("apparmor", "apparmor_parser -r failed (rc=1): nope")
        name = text.split()[1]
        self.loaded.add(name)
        self.log.append(("load", name))

    def remove(self, name: str) -> None:
        self.loaded.discard(name)
        self.log.append(("remove", name))


def art(name: str = NAME) -> AppArmorArtifact:
    return AppArmorArtifact(
        name=name, text=f"profile {name} {{}}\n", key=name[4:], skipped_rules=()
    )


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def lt(store: FakeStore, tmp_path: Path) -> Lifetime:
    return Lifetime(store, lock_dir=tmp_path / "run" / "apparmor", confined=lambda name: [])


def test_first_hold_loads_later_holds_share_last_release_removes(
    lt: Lifetime, store: FakeStore
) -> None:
    h1 = lt.hold(art())
    h2 = lt.hold(art())
    assert store.log == [("load", NAME)]
    lock = lt.lock_dir / f"{NAME}.lock"
    assert lock.exists() and (lt.lock_dir.stat().st_mode & 0o777) == 0o700
    assert lt.release(h1) is Released.SHARED
    assert store.is_loaded(NAME)
    assert lt.release(h2) is Released.REMOVED
    assert store.log == [("load", NAME), ("remove", NAME)]
    assert not lock.exists()
    assert lt.release(h2) is Released.ALREADY


def test_hold_is_a_context_manager_and_reloads_after_removal(
    lt: Lifetime, store: FakeStore
) -> None:
    with lt.hold(art()) as h:
        assert h.is_held and h.name == NAME
    assert not h.is_held
    with lt.hold(art()):
        pass
    assert store.log == [("load", NAME), ("remove", NAME)] * 2


def test_profiles_are_independent(lt: Lifetime, store: FakeStore) -> None:
    a, b = lt.hold(art(NAME)), lt.hold(art(OTHER))
    assert lt.release(a) is Released.REMOVED
    assert store.loaded == {OTHER}
    assert lt.release(b) is Released.REMOVED
    assert store.loaded == set() and list(lt.lock_dir.iterdir()) == []


def test_lock_fds_are_close_on_exec(lt: Lifetime) -> None:
    with lt.hold(art()) as h:
        assert not os.get_inheritable(h.fd)


def test_a_failed_load_releases_the_hold(tmp_path: Path) -> None:
    lt = Lifetime(FakeStore(fail_load=True), lock_dir=tmp_path / "locks", confined=lambda n: [])
    with pytest.raises(SetupError, match="nope"):
        lt.hold(art())
    assert not (tmp_path / "locks" / f"{NAME}.lock").exists()


def test_release_keeps_a_profile_that_tasks_still_use(store: FakeStore, tmp_path: Path) -> None:
    lt = Lifetime(store, lock_dir=tmp_path / "locks", confined=lambda name: [4242])
    h = lt.hold(art())
    assert lt.release(h) is Released.TASKS_ALIVE
    assert store.is_loaded(NAME) and (tmp_path / "locks" / f"{NAME}.lock").exists()


def _holder(lt: Lifetime) -> tuple[int, int]:
    """Fork a process that holds NAME and then sleeps until killed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            lt.hold(art())
            os.write(w, b"k")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"k"
    os.close(r)
    return pid, r


def test_a_sigkilled_holder_releases_its_hold_and_sweep_removes_the_profile(
    lt: Lifetime, store: FakeStore
) -> None:
    pid, _ = _holder(lt)
    store.loaded.add(NAME)  # the fake store is per process: mirror the child's load
    assert lt.sweep() == ()  # alive: held
    mine = lt.hold(art())  # shares the profile with the child
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert lt.sweep() == ()  # we still hold it
    assert lt.release(mine) is Released.REMOVED  # the dead holder does not count


def test_sweep_removes_unheld_lock_files_and_unlocked_kernel_profiles(
    lt: Lifetime, store: FakeStore
) -> None:
    crashed = lt.hold(art())
    os.close(crashed.fd)  # what process death does: the kernel drops the flock
    crashed.fd = -1
    store.loaded.add(OTHER)  # loaded by someone whose lock dir was wiped
    store.loaded.add("not_ours")
    assert set(lt.sweep()) == {NAME, OTHER}
    assert store.loaded == {"not_ours"}
    assert list(lt.lock_dir.iterdir()) == []


def test_a_holder_waiting_on_a_remover_takes_the_new_file_and_reloads(
    lt: Lifetime, store: FakeStore
) -> None:
    h = lt.hold(art())
    path = h.path
    # Become "the remover": take LOCK_EX as release would (the hold's own SH
    # lock goes first, flock conversion is not atomic).
    fcntl.flock(h.fd, fcntl.LOCK_EX)
    got: list[ProfileHold] = []
    t = threading.Thread(target=lambda: got.append(lt.hold(art())))
    t.start()
    time.sleep(0.2)
    assert not got  # blocked on our LOCK_EX
    store.remove(NAME)  # remove, then unlink, then unlock: the release order
    path.unlink()
    os.close(h.fd)
    h.fd = -1
    t.join(5)
    (new,) = got
    assert store.log == [("load", NAME), ("remove", NAME), ("load", NAME)]
    assert path.exists() and os.fstat(new.fd).st_ino == path.stat().st_ino
    assert lt.release(new) is Released.REMOVED
    assert store.loaded == set() and not path.exists()


def test_lock_dir_must_be_private(tmp_path: Path, store: FakeStore) -> None:
    d = tmp_path / "open"
    d.mkdir(mode=0o777)
    d.chmod(0o777)
    with pytest.raises(SetupError, match="mode 0700"):
        Lifetime(store, lock_dir=d).hold(art())
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(SetupError):
        Lifetime(store, lock_dir=link).hold(art())


def test_only_generated_names_get_lock_files(lt: Lifetime) -> None:
    with pytest.raises(SandboxInternalError):
        lt.hold(art("../../etc/passwd"))


def test_module_level_api_uses_the_holds_lifetime(lt: Lifetime, store: FakeStore) -> None:
    h = hold(art(), lt)
    assert release(h) is Released.REMOVED
    assert sweep(lt) == ()


@pytest.mark.parametrize(
    ("label", "names"),
    [
        ("sbx_x (enforce)\n", {"sbx_x"}),
        ("unconfined\n", {"unconfined"}),
        ("sbx_x//&other (mixed)", {"sbx_x", "other"}),
        (":ns:sbx_x (enforce)", {"sbx_x"}),
        ("/usr/bin/man (complain)", {"/usr/bin/man"}),
    ],
)
def test_label_names(label: str, names: set[str]) -> None:
    assert _label_names(label) == names


def test_confined_tasks_scans_a_procfs_tree(tmp_path: Path) -> None:
    for pid, attr, label in [
        ("1", "attr/apparmor/current", "unconfined\n"),
        ("20", "attr/apparmor/current", f"{NAME} (enforce)\n"),
        ("30", "attr/current", f"{NAME}//&x (enforce)\n"),  # kernels before 5.8
        ("40", "attr/apparmor/current", f"{OTHER} (enforce)\n"),
    ]:
        (tmp_path / pid / attr).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / pid / attr).write_text(label)
    (tmp_path / "self").mkdir()
    (tmp_path / "55").mkdir()  # a task that exited while we scanned
    assert sorted(confined_tasks(NAME, tmp_path)) == [20, 30]
