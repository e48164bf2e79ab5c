"""Lint: one good and one bad fixture per rule, the registry's shape, and strict's silence."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from verify_fixtures import apparmor_text, ctx, policy

from sandbox.verify import lint
from sandbox.verify.mountflags import NODEV, NOSUID, MountFlags

Ctx = Callable[[], lint.LintContext]
NO_DENY = {"deny": []}
AA_GOOD = lambda: ctx(policy())  # noqa: E731 - the rendered strict profile


def text_with(rule: str) -> Ctx:
    def make() -> lint.LintContext:
        base = apparmor_text(policy())
        return ctx(policy(), text=base.replace("\n}\n", f"\n  {rule}\n}}\n"))

    return make


def seccomp(**kw: object) -> Ctx:
    return lambda: ctx(policy(seccomp={**NO_DENY, **kw}))


# rule id -> (good context, bad context, text the bad finding must contain)
FIXTURES: dict[str, tuple[Ctx, Ctx, str]] = {
    "SBX101": (
        lambda: ctx(policy(capabilities={"keep": ["CAP_NET_BIND_SERVICE"]})),
        lambda: ctx(policy(capabilities={"keep": ["sys_admin"]})),
        "grants CAP_SYS_ADMIN",
    ),
    "SBX102": (
        lambda: ctx(policy(capabilities={"keep": ["CAP_CHOWN"]})),
        lambda: ctx(policy(capabilities={"keep": ["CAP_NET_ADMIN"]})),
        "grants CAP_NET_ADMIN",
    ),
    "SBX104": (
        lambda: ctx(policy(capabilities={"keep": []})),
        lambda: ctx(policy(capabilities={"keep": ["CAP_CHOWN", "sys_tty_config"]})),
        "grants CAP_SYS_TTY_CONFIG",
    ),
    "SBX103": (
        seccomp(default_action="errno"),
        seccomp(default_action="log"),
        'default_action = "log"',
    ),
    "SBX110": (seccomp(allow=["getppid"]), seccomp(allow=["ptrace"]), "ptrace can run"),
    "SBX111": (seccomp(allow=["getppid"]), seccomp(allow=["bpf"]), "bpf can run"),
    "SBX112": (seccomp(), seccomp(allow=["userfaultfd"]), "userfaultfd can run"),
    "SBX113": (seccomp(), seccomp(allow=["keyctl"]), "keyctl can run"),
    "SBX114": (seccomp(), seccomp(allow=["fsopen"]), "fsopen can run"),
    "SBX115": (seccomp(), seccomp(allow=["unshare"]), "unshare can run"),
    "SBX116": (
        seccomp(),  # the process group: clone without CLONE_NEW*, clone3 -> ENOSYS
        seccomp(groups=["basic_io", "memory", "signals"], allow=["clone", "clone3"]),
        "clone with CLONE_NEWUSER can run",
    ),
    "SBX117": (seccomp(), seccomp(allow=["perf_event_open"]), "perf_event_open can run"),
    "SBX118": (seccomp(), seccomp(allow=["kexec_file_load"]), "kexec_file_load can run"),
    "SBX119": (seccomp(), seccomp(allow=["finit_module"]), "finit_module can run"),
    "SBX120": (seccomp(), seccomp(allow=["open_by_handle_at"]), "open_by_handle_at can run"),
    "SBX121": (seccomp(), seccomp(allow=["io_uring_setup"]), "io_uring_setup can run"),
    "SBX122": (
        seccomp(),  # basic_io refuses TIOCSTI/TIOCLINUX on the low 32 bits
        seccomp(groups=["memory", "process"], allow=["ioctl"]),
        "ioctl TIOCSTI can run",
    ),
    "SBX123": (seccomp(allow=["getppid", "syncfs"]), seccomp(allow=["sync"]), "sync can run"),
    "SBX130": (
        lambda: ctx(policy(filesystem={"binds": [{"source": "/etc", "target": "/data"}]})),
        lambda: ctx(
            policy(filesystem={"binds": [{"source": "/tmp", "target": "/data", "writable": True}]})
        ),
        "host /tmp is writable at /data",
    ),
    "SBX131": (
        lambda: ctx(policy()),  # the real mount code: nosuid,nodev everywhere (/dev: nosuid)
        lambda: ctx(policy(), mounts_=(MountFlags("/scratch", "tmpfs", NOSUID),)),
        "/scratch (tmpfs) is mounted rw,nosuid, without nodev",
    ),
    "SBX132": (
        lambda: ctx(policy()),
        lambda: ctx(policy(namespaces={"net": False})),
        "uses the host's network stack",
    ),
    "SBX133": (
        lambda: ctx(policy()),
        lambda: ctx(policy(namespaces={"ipc": False})),
        "shares the host's ipc namespace",
    ),
    "SBX134": (
        lambda: ctx(policy()),
        lambda: ctx(policy(namespaces={"nested_userns": True})),
        "nested_userns = true",
    ),
    "SBX135": (
        lambda: ctx(policy(filesystem={"binds": [{"source": "/usr/share", "target": "/s"}]})),
        lambda: ctx(policy(filesystem={"binds": [{"source": "/proc", "target": "/hostproc"}]})),
        "host /proc is visible",
    ),
    "SBX136": (
        lambda: ctx(policy(filesystem={"binds": [{"source": "/etc/ssl/certs", "target": "/c"}]})),
        lambda: ctx(policy(filesystem={"host_dirs": ["/usr", "/var"]})),
        "host /var is visible",
    ),
    "SBX137": (
        lambda: ctx(policy(filesystem={"read_paths": ["/usr", "/box"]})),
        lambda: ctx(policy(filesystem={"read_paths": ["/"]})),
        "read_paths grants '/'",
    ),
    "SBX138": (
        lambda: ctx(policy()),
        lambda: ctx(policy(namespaces={"mount": False})),
        "namespaces.mount = false",
    ),
    "SBX139": (
        lambda: ctx(policy(layers={"seccomp": "degradable"})),
        lambda: ctx(policy(layers={"seccomp": "disabled"})),
        'layers.seccomp = "disabled"',
    ),
    "SBX140": (
        lambda: ctx(policy(apparmor={"extra_rules": ["/opt/tool ix,"]})),
        lambda: ctx(policy(apparmor={"extra_rules": ["/opt/tool Ux,"]})),
        "runs programs unconfined",
    ),
    "SBX141": (AA_GOOD, text_with("capability,"), "'capability,'"),
    "SBX142": (AA_GOOD, text_with("mount fstype=tmpfs,"), "'mount fstype=tmpfs,'"),
    "SBX143": (AA_GOOD, text_with("audit ptrace (trace),"), "'ptrace (trace),'"),
    "SBX150": (
        lambda: ctx(policy(filesystem={"read_paths": ["/usr/share", "/etc", "/tmp/x"]})),
        lambda: ctx(policy(filesystem={"read_paths": ["/opt/no-such-tree"]})),
        "grants /opt/no-such-tree, which does not exist",
    ),
    "SBX151": (
        seccomp(allow=["getppid"]),
        seccomp(allow=["chroot"]),
        "chroot is allowed but needs CAP_SYS_CHROOT",
    ),
    "SBX152": (
        lambda: ctx(policy(layers={"landlock": "degradable"})),
        lambda: ctx(policy(layers={"seccomp": "degradable"})),
        'layers.seccomp = "degradable", but strict requires it',
    ),
    "SBX153": (
        lambda: ctx(policy(seccomp={"allow": ["getppid"]})),
        lambda: ctx(policy(seccomp={"allow": ["ptrace"]})),
        "seccomp.allow lists ptrace, which seccomp.deny refuses",
    ),
    "SBX154": (
        lambda: ctx(policy(capabilities={"keep": ["CAP_CHOWN"]})),
        lambda: ctx(policy(capabilities={"keep": ["CAP_CHOWN"], "deny": ["chown"]})),
        "capabilities.keep lists CAP_CHOWN",
    ),
    "SBX160": (
        lambda: ctx(policy(limits={"memory": "64G", "processes": 4096})),
        lambda: ctx(policy(limits={"memory": "2T"})),
        "limits.memory = 2199023255552 is more than 1 TiB",
    ),
    "SBX155": (
        lambda: ctx(policy(identity={"hostname": "box1"})),
        lambda: ctx(policy(identity={"hostname": "box1"}, namespaces={"uts": False})),
        "cannot be set",
    ),
}


def test_every_rule_has_fixtures_and_a_fix() -> None:
    assert set(FIXTURES) == set(lint.RULES)
    for r in lint.RULES.values():
        assert r.id.startswith("SBX1") and r.fix and r.title
        assert r.severity in ("error", "warning") and r.kind in ("danger", "consistency")


@pytest.mark.parametrize("rule_id", sorted(FIXTURES))
def test_rule_good_and_bad(rule_id: str) -> None:
    good, bad, needle = FIXTURES[rule_id]
    assert lint.run(good(), [rule_id]) == []
    found = lint.run(bad(), [rule_id])
    assert found, f"{rule_id} missed its bad fixture"
    assert any(needle in f.message for f in found), [f.message for f in found]
    assert all(f.id == rule_id and f.fix and f.subject for f in found)


def test_strict_and_its_children_are_clean() -> None:
    assert lint.run(ctx(policy())) == []


def test_strict_lineage_turns_sharing_into_errors() -> None:
    pol = policy(namespaces={"net": False}, layers={"cgroups": "degradable"})
    for strict, severity in ((True, "error"), (False, "warning")):
        found = lint.run(ctx(pol, strict=strict), ["SBX132"])
        assert {f.severity for f in found} == {severity}


def test_a_degradable_layer_is_a_warning_even_under_strict() -> None:
    """Issue 3: a profile may mark a layer degradable; the run records its state."""
    pol = policy(layers={"cgroups": "degradable"})
    for strict in (True, False):
        found = lint.run(ctx(pol, strict=strict), ["SBX152"])
        assert found and {f.severity for f in found} == {"warning"}


def test_tiocsti_with_high_bits_is_judged_on_32_bits() -> None:
    # A 64-bit compare (bwrap's CVE-2019-10063) would let TIOCSTI | 1 << 32 run.
    found = lint.run(seccomp(groups=["memory"], allow=["ioctl"])(), ["SBX122"])
    assert {f.subject for f in found} == {"ioctl(TIOCSTI)", "ioctl(TIOCLINUX)"}


def test_apparmor_comments_and_denies_are_not_rules() -> None:
    text = apparmor_text(policy()).replace(
        "\n}\n", '\n  # capability,\n  deny mount,\n  "/x#y" r, # ptrace,\n}\n'
    )
    assert lint.run(ctx(policy(), text=text), ["SBX141", "SBX142", "SBX143"]) == []


def test_dev_may_lack_nodev_but_not_nosuid() -> None:
    dev = MountFlags("/dev", "tmpfs", NOSUID)
    assert lint.run(ctx(policy(), mounts_=(dev,)), ["SBX131"]) == []
    dev = MountFlags("/dev", "tmpfs", NODEV)
    assert [f.subject for f in lint.run(ctx(policy(), mounts_=(dev,)), ["SBX131"])] == ["/dev"]


@pytest.mark.parametrize(
    ("source", "rule_id"),
    [
        ("/", "SBX135"),
        ("/proc/1/root", "SBX135"),
        ("/sys/fs/cgroup", "SBX135"),
        ("/dev/shm", "SBX135"),
        ("/etc", "SBX136"),
        ("/etc/ssh/sshd_config", "SBX136"),
        ("/root/.ssh", "SBX136"),
        ("/home", "SBX136"),
        ("/var/lib/sandbox/images", "SBX136"),
        ("/tmp", "SBX136"),
    ],
)
def test_every_way_to_show_the_host_is_an_error(source: str, rule_id: str) -> None:
    """Issue 13: each of these passed verify with no finding on b79e3bf."""
    for fs in (
        {"binds": [{"source": source, "target": "/x"}]},
        {"rootfs": [source]},
        {"host_dirs": ["/usr", source]},
    ):
        pol = policy(filesystem=fs)
        found = lint.run(ctx(pol, strict=False, text="", mounts_=()), [rule_id])
        assert [f.severity for f in found] == ["error"], (fs, found)


@pytest.mark.parametrize(("points_to", "rule_id"), [("/", "SBX135"), ("/etc", "SBX136")])
def test_a_source_is_judged_by_where_it_resolves(tmp_path, points_to: str, rule_id: str) -> None:
    """A symlink named harmlessly (root-owned links are followed by the mount code) to
    the host's root or /etc is what it shows (second attack round)."""
    link = tmp_path / "harmless"
    link.symlink_to(points_to)
    pol = policy(filesystem={"binds": [{"source": str(link), "target": "/x"}]})
    found = lint.run(ctx(pol, strict=False, text="", mounts_=()), [rule_id])
    assert [f.severity for f in found] == ["error"], found
    assert "through a symlink" in found[0].message


def test_fine_host_paths_are_not_flagged() -> None:
    for source in ("/usr", "/usr/share/zoneinfo", "/etc/ssl/certs", "/opt/testdata", "/srvx"):
        pol = policy(filesystem={"binds": [{"source": source, "target": "/x"}]})
        assert lint.run(ctx(pol, text="", mounts_=()), ["SBX135", "SBX136"]) == [], source


def test_a_disabled_layer_is_an_error_even_outside_strict() -> None:
    for strict in (True, False):
        pol = policy(layers={"overlay": "disabled"})
        found = lint.run(ctx(pol, strict=strict), ["SBX139", "SBX152"])
        assert [(f.id, f.severity) for f in found] == [("SBX139", "error")]


def test_every_capability_is_flagged_by_one_rule() -> None:
    from sandbox.caps.names import CAPS

    for cap in CAPS:
        found = lint.run(ctx(policy(capabilities={"keep": [cap]})), ["SBX101", "SBX102", "SBX104"])
        assert len(found) == 1, (cap, found)
    assert frozenset(CAPS) == lint.FLAGGED_CAPS


def test_flagged_syscalls_are_what_the_rules_flag() -> None:
    """learn relies on this table: each name in it makes its rule fire when allowed."""
    for name, rule_id in sorted(lint.flagged_syscalls().items()):
        pol = policy(seccomp={"deny": [], "allow": [name], "groups": ["memory"]})
        found = lint.run(ctx(pol), [rule_id])
        assert found, (name, rule_id)


def test_a_glob_at_the_top_is_the_whole_root_too() -> None:
    pol = policy(filesystem={"exec_paths": ["/usr", "/*"], "read_paths": ["/u*"]})
    found = lint.run(ctx(pol), ["SBX137"])
    assert sorted(f.message.split(" grants ")[1][:5] for f in found) == ["'/*':", "'/u*'"]
