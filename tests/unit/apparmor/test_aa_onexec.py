"""Change-on-exec request, with a recording write function."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from sandbox.apparmor import onexec

NAME = "sbx_" + "c" * 32


class Recorder:
    """Records writes; raises the scripted errors per path."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.fail = fail or {}

    def __call__(self, path: str, data: bytes) -> None:
        self.calls.append((path, data))
        if path in self.fail:
            err = self.fail[path]
            raise OSError(err, f"write({path!r}): {errno.errorcode[err]}", path)


def test_writes_exec_name_to_the_apparmor_attr_of_this_thread() -> None:
    rec = Recorder()
    assert onexec.apply_in_child(NAME, rec) == "/proc/thread-self/attr/apparmor/exec"
    assert rec.calls == [("/proc/thread-self/attr/apparmor/exec", f"exec {NAME}".encode())]


def test_falls_back_to_the_generic_attr_when_the_lsm_directory_is_missing() -> None:
    rec = Recorder({onexec.EXEC_ATTR: errno.ENOENT})
    assert onexec.apply_in_child(NAME, rec) == "/proc/self/attr/exec"
    assert [p for p, _ in rec.calls] == [onexec.EXEC_ATTR, "/proc/self/attr/exec"]


@pytest.mark.parametrize("err", [errno.EINVAL, errno.EACCES, errno.EPERM])
def test_other_errors_propagate_fail_closed(err: int) -> None:
    rec = Recorder({onexec.EXEC_ATTR: err})
    with pytest.raises(OSError) as e:
        onexec.apply_in_child(NAME, rec)
    assert e.value.errno == err and len(rec.calls) == 1


def test_a_profile_missing_everywhere_raises_enoent() -> None:
    rec = Recorder({onexec.EXEC_ATTR: errno.ENOENT, onexec.EXEC_ATTR_FALLBACK: errno.ENOENT})
    with pytest.raises(FileNotFoundError):
        onexec.apply_in_child(NAME, rec)


def test_importing_onexec_loads_nothing_new() -> None:
    """The launcher imports it before its first restriction: no new modules.

    (``__future__`` aside: every module of the launcher imports it first.)
    """
    code = (
        "import sys; before = set(sys.modules); import sandbox.apparmor.onexec; "
        "print(sorted(m for m in set(sys.modules) - before"
        " if not m.startswith('sandbox') and m != '__future__'))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=sys.path[0] or None,
    )
    assert out.stdout.strip() == "[]", out.stdout
