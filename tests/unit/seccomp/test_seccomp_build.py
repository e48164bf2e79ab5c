"""prepare(): libseccomp output, bad-arch action, default actions, key, caches."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
from pathlib import Path

import pyseccomp
import pytest
from seccomp_fixtures import profile_seccomp

from sandbox.errors import ArtifactError, PolicyError
from sandbox.policy.model import Seccomp
from sandbox.seccomp import actions as act
from sandbox.seccomp import build
from sandbox.seccomp.build import artifact_key, compile_spec, prepare
from sandbox.seccomp.cache import DiskCache
from sandbox.seccomp.groups import resolve
from sandbox.seccomp.tables import AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, table

NR = table("x86_64").by_name


@pytest.fixture(autouse=True)
def _fresh_memory_cache() -> None:
    build.clear_memory_cache()


def test_strict_artifact() -> None:
    art = prepare(profile_seccomp("strict"))
    assert art.arch == "x86_64"
    assert art.default_action == "kill_process"
    assert len(art.bpf) % 8 == 0 and 100 < art.instructions < 1000
    assert len(art.key) == 64
    # Foreign ABIs go to the supervisor's listener: every filter has one.
    assert art.notify and art.flags == act.SECCOMP_FILTER_FLAG_NEW_LISTENER
    assert {"read", "execve", "clone", "ioctl", "wait4"} <= art.allowed
    assert not {"ptrace", "clone3", "unshare", "mount"} & art.allowed
    assert "# invalid architecture action\naction 0x7fc00000;" in art.pfc  # USER_NOTIF
    prog = art.program()
    assert prog.evaluate(NR["getpid"], AUDIT_ARCH_X86_64) == act.SECCOMP_RET_ALLOW
    assert prog.evaluate(NR["ptrace"], AUDIT_ARCH_X86_64) == act.SECCOMP_RET_KILL_PROCESS
    assert prog.evaluate(NR["clone3"], AUDIT_ARCH_X86_64) == act.errno_ret(errno.ENOSYS)


def test_foreign_abis_go_to_the_supervisor_not_a_kernel_kill() -> None:
    """The listener records arch and syscall and kills the whole run; a kernel kill
    would be known only from the kernel log (issue 13 item 4)."""
    prog = prepare(profile_seccomp("strict")).program()
    notify = act.SECCOMP_RET_USER_NOTIF
    assert prog.evaluate(20, AUDIT_ARCH_I386) == notify  # getpid via int 0x80
    assert prog.evaluate(X32_SYSCALL_BIT | 39, AUDIT_ARCH_X86_64) == notify  # getpid via x32
    # libseccomp's own default would only kill the thread:
    filt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    assert filt.get_attr(pyseccomp.Attr.ACT_BADARCH) == act.SECCOMP_RET_KILL_THREAD


@pytest.mark.parametrize("action", sorted(act.ACTION_RET))
def test_default_actions(action: str) -> None:
    seccomp = Seccomp(groups=["process"], default_action=action, default_errno="EACCES")
    art = prepare(seccomp)
    prog = art.program()
    want = act.action_ret(action, errno.EACCES)
    assert prog.evaluate(NR["acct"], AUDIT_ARCH_X86_64) == want
    assert prog.evaluate(99999, AUDIT_ARCH_X86_64) == want  # unknown number
    assert prog.evaluate(20, AUDIT_ARCH_I386) == act.SECCOMP_RET_USER_NOTIF
    assert art.notify  # the foreign ABIs' listener, whatever the default
    assert art.flags == act.SECCOMP_FILTER_FLAG_NEW_LISTENER


def test_key_depends_on_inputs_only() -> None:
    a = Seccomp(groups=["process", "memory"], allow=["read", "write"])
    b = Seccomp(groups=["memory", "process"], allow=["write", "read", "read"])
    assert prepare(a).key == prepare(b).key
    spec = resolve(a)
    keys = {
        artifact_key(spec, "x86_64"),
        artifact_key(spec, "x32"),
        artifact_key(dataclasses.replace(spec, default_action="errno"), "x86_64"),
        artifact_key(dataclasses.replace(spec, deny=frozenset({"read"})), "x86_64"),
    }
    assert len(keys) == 4
    # default_errno only counts when the default action is "errno".
    assert prepare(Seccomp(default_errno="EIO")).key == prepare(Seccomp()).key
    errno_default = Seccomp(default_action="errno", default_errno="EIO")
    assert prepare(errno_default).key != prepare(Seccomp(default_action="errno")).key


def test_memory_cache_returns_the_same_artifact() -> None:
    seccomp = profile_seccomp("interp")
    assert prepare(seccomp) is prepare(seccomp)


def test_errors() -> None:
    with pytest.raises(PolicyError, match="ptrac"):
        prepare(Seccomp(allow=["ptrac"]))
    with pytest.raises(ArtifactError, match="unknown arch"):
        compile_spec(resolve(Seccomp()), "aarch64")
    # i386: libseccomp would move socket()'s AF_UNIX check onto socketcall and lose it.
    with pytest.raises(ArtifactError, match="socketcall"):
        prepare(profile_seccomp("strict"), arch="i386")
    assert prepare(Seccomp(groups=["process", "memory"]), arch="i386").arch == "i386"


def test_libseccomp_failure_becomes_artifact_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one fake here: a real libseccomp failure cannot be provoked on purpose.
    def fail(*_: object) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(pyseccomp.SyscallFilter, "add_rule", fail)
    with pytest.raises(ArtifactError, match=r"seccomp: seccomp_rule_add\(.*Invalid argument"):
        compile_spec(resolve(Seccomp(groups=["process"])))


def private_dir(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir(mode=0o700)
    return path


def test_disk_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path)
    first = prepare(profile_seccomp("strict"), cache_dir=cache)
    assert (cache / f"{first.key}.json").exists()
    assert os.stat(cache / f"{first.key}.json").st_mode & 0o077 == 0
    build.clear_memory_cache()

    def no_compile(*_: object) -> None:
        raise AssertionError("should have come from the disk cache")

    monkeypatch.setattr(build, "compile_spec", no_compile)
    second = prepare(profile_seccomp("strict"), cache_dir=cache)
    assert second == first and second is not first


def test_disk_cache_rejects_tampered_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = private_dir(tmp_path)
    art = prepare(profile_seccomp("strict"), cache_dir=cache)
    entry = cache / f"{art.key}.json"
    text = entry.read_text()
    # Turn one ALLOW (7fff0000) into another value: content hash no longer matches.
    entry.write_text(text.replace("0000ff7f", "0000fe7f", 1))
    with caplog.at_level(logging.WARNING):
        assert DiskCache(cache).get(art.key) is None
    assert "rejected" in caplog.text
    build.clear_memory_cache()
    assert prepare(profile_seccomp("strict"), cache_dir=cache) == art  # rebuilt and rewritten
    assert DiskCache(cache).get(art.key) == art
    entry.chmod(0o666)
    assert DiskCache(cache).get(art.key) is None


def test_disk_cache_refuses_unsafe_directories(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with pytest.raises(ArtifactError, match="chmod 700"):
        prepare(Seccomp(), cache_dir=loose)
    link = tmp_path / "link"
    link.symlink_to(private_dir(tmp_path))
    with pytest.raises(ArtifactError, match="symlink"):
        DiskCache(link)
    created = tmp_path / "new"
    DiskCache(created)
    assert created.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the directory away")
def test_disk_cache_refuses_a_directory_owned_by_someone_else(tmp_path: Path) -> None:
    other = private_dir(tmp_path)
    os.chown(other, 65534, 65534)
    with pytest.raises(ArtifactError, match="owned by uid 65534"):
        DiskCache(other)
