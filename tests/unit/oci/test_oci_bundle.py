"""config.json checks (fail closed), the bundle -> profile conversion, the runtime's parser."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sandbox.oci import bundle as B
from sandbox.oci.main import UsageError, parse, parse_signal

CAPS = ["CAP_KILL", "CAP_CHOWN"]
BASE = {
    "ociVersion": "1.0.2",
    "process": {
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/bin:/bin", "HOME=/root"],
        "cwd": "/",
        "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted")},
    },
    "root": {"path": "rootfs"},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
}


@pytest.fixture
def bdir(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def check(bdir: Path, mutate=None) -> B.Bundle:
    doc = copy.deepcopy(BASE)
    if mutate:
        mutate(doc)
    return B.parse(doc, str(bdir))


def test_a_minimal_bundle(bdir: Path) -> None:
    b = check(bdir)
    assert b.root == str(bdir / "rootfs")
    assert b.process.args == ("sh",)
    assert b.process.caps == frozenset(CAPS)
    assert b.ns_paths == ()
    assert any("no_new_privs" in n for n in b.notes)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(ociVersion="2.0"), "ociVersion"),
        (lambda d: d.pop("process"), "process"),
        (lambda d: d["root"].update(path="../x"), "escapes the bundle"),
        (lambda d: d["linux"]["namespaces"].append({"type": "weird"}), "unknown namespace type"),
        (lambda d: d["linux"]["namespaces"].append({"type": "pid"}), "listed twice"),
        (lambda d: d["linux"].update(namespaces=[{"type": "pid"}]), "no network namespace"),
        (
            lambda d: d["linux"]["namespaces"].__setitem__(0, {"type": "pid", "path": "/x"}),
            "joining a pid namespace",
        ),
        (lambda d: d["process"]["user"].update(additionalGids=[5]), "supplementary"),
        (lambda d: d["process"]["user"].update(umask=0), "umask"),
        (
            lambda d: d["process"].update(rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
            "unknown resource",
        ),
        (
            lambda d: d["process"].update(
                rlimits=[{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}]
            ),
            "soft limit above",
        ),
        (lambda d: d["process"]["capabilities"].update(bounding=["NOPE"]), "capability name"),
        (lambda d: d["mounts"].append({"destination": "rel", "type": "tmpfs"}), "absolute"),
        (lambda d: d["mounts"].append({"destination": "/a/../b", "type": "tmpfs"}), "'..'"),
        (lambda d: d["mounts"].append({"destination": "/dev/x", "type": "tmpfs"}), "/dev"),
        (
            lambda d: d["mounts"].append(
                {"destination": "/m", "type": "tmpfs", "options": ["weirdopt"]}
            ),
            "weirdopt",
        ),
        (
            lambda d: d["mounts"].append(
                {"destination": "/m", "type": "bind", "source": "/no/such/source"}
            ),
            "does not exist",
        ),
        (lambda d: d["linux"].update(sysctl={"vm.swappiness": "1"}), "own net/ipc"),
        (
            lambda d: d["mounts"].append(
                {"destination": "/m", "type": "bind", "source": "/tmp/../etc"}
            ),
            "'..'",
        ),
        (
            lambda d: d["mounts"].append({"destination": "/m", "type": "tmpfs", "options": ["ro"]}),
            "read-only tmpfs",
        ),
        (lambda d: d["linux"].update(resources={"unified": {"memory.max": "1"}}), "unified"),
        (lambda d: d["linux"].update(resources={"cpu": {"shares": 512}}), "weights"),
        (
            lambda d: d["linux"].update(resources={"memory": {"disableOOMKiller": True}}),
            "OOM killer",
        ),
        (
            lambda d: d["linux"].update(
                resources={"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}
            ),
            "page size",
        ),
        (lambda d: d["linux"].update(maskedPaths=["/etc/shadow"]), "/proc and /sys"),
        (
            lambda d: d.update(hooks={"createContainer": [{"path": "/bin/true"}]}),
            "inside the container",
        ),
        (lambda d: d.update(domainname="x"), "domainname"),
        (lambda d: d["linux"].update(intelRdt={}), "intelRdt"),
        (
            lambda d: d["linux"].update(cgroupsPath="machine.slice:libpod:abc"),
            "linux.cgroupsPath: 'machine.slice:libpod:abc' is a systemd cgroup path",
        ),
        (lambda d: d["linux"].update(cgroupsPath="/a/../../b"), "linux.cgroupsPath: "),
        (lambda d: d["linux"].update(cgroupsPath="/"), "linux.cgroupsPath: '/' names the root"),
        (lambda d: d["linux"].update(cgroupsPath=7), "linux.cgroupsPath: must be a string"),
        (lambda d: d["linux"].update(cgroupsPath="/x\ny"), "control character"),
    ],
)
def test_refusals_name_the_field(bdir: Path, mutate, where: str) -> None:
    with pytest.raises(B.BundleError) as e:
        check(bdir, mutate)
    assert where in str(e.value)
    assert "\n" not in str(e.value)


def test_malformed_json(bdir: Path) -> None:
    (bdir / "config.json").write_text("[1, 2")
    with pytest.raises(B.BundleError, match="malformed JSON"):
        B.load(str(bdir))


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(B.BundleError, match=r"config\.json"):
        B.load(str(tmp_path))


def test_mounts_we_do_not_make_are_noted(bdir: Path) -> None:
    def add(d):
        d["mounts"] += [
            {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
            {"destination": "/data", "type": "tmpfs", "options": ["size=1m", "mode=700"]},
        ]

    b = check(bdir, add)
    assert [m.target for m in b.mounts] == ["/data"]
    assert b.mounts[0].size == 1 << 20 and b.mounts[0].mode == 0o700
    assert any(n.startswith("/sys:") for n in b.notes)


def test_resources(bdir: Path) -> None:
    def res(d):
        d["linux"]["resources"] = {
            "memory": {"limit": 1 << 26, "swap": 1 << 27},
            "pids": {"limit": 10},
            "cpu": {"quota": 50000, "period": 100000, "cpus": "0", "shares": 1024},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
            "network": {"classID": 7, "priorities": [{"name": "lo", "priority": 2}]},
            "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
        }

    r = check(bdir, res).resources
    assert (r.memory, r.pids, r.cpu_quota, r.cpuset) == (1 << 26, 10, 0.5, "0")
    assert r.hugetlb == (("2MB", 4 << 20),)
    assert (r.net_classid, r.net_prio) == (7, (("lo", 2),))
    assert r.io == (("8:0", "rbps", 1000),)


def test_joinable_namespace_path(bdir: Path) -> None:
    def ns(d):
        d["linux"]["namespaces"][1] = {"type": "network", "path": "/run/netns/x"}

    assert check(bdir, ns).ns_paths == (("network", "/run/netns/x"),)


# ------------------------------------------------------------ conversion ----
def test_cgroups_path_is_the_leaf_place_not_a_note(bdir: Path) -> None:
    def at(path: str):
        return lambda d: d["linux"].update(cgroupsPath=path)

    b = check(bdir, at("/libpod_parent//libpod-abc/"))
    assert b.cgroups_path == "/libpod_parent/libpod-abc"
    assert not any("cgroupsPath" in n for n in b.notes)
    assert check(bdir, at("")).cgroups_path is None  # runc: empty means a default place
    assert check(bdir).cgroups_path is None


def test_cgroups_path_reaches_the_compiled_leaf_request(tmp_path: Path) -> None:
    from ocikit import make_rootfs

    from sandbox.compile import Artifacts, compile_run
    from sandbox.host import probe
    from sandbox.oci.convert import adjust, convert

    make_rootfs(tmp_path / "rootfs")
    b = check(tmp_path, lambda d: d["linux"].update(cgroupsPath="/default/c1"))
    host = probe()
    conv = convert(b)
    compiled = adjust(compile_run(conv.profile, host, conv.request, Artifacts(host)), b, host)
    assert compiled.cgroup is not None and compiled.cgroup.path == "/default/c1"


def test_conversion_without_annotation_keeps_the_floor(bdir: Path) -> None:
    from sandbox.oci.convert import convert

    def sec(d):
        d["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write", "ptrace", "clone", "ioctl"], "action": "SCMP_ACT_ALLOW"}
            ],
        }
        d["process"]["capabilities"] = {
            k: ["CAP_KILL", "CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")
        }

    conv = convert(check(bdir, sec))
    pol = conv.profile.policy
    assert "ptrace" in pol.seccomp.deny  # the oci floor
    assert "clone" not in pol.seccomp.allow and "ioctl" not in pol.seccomp.allow
    assert {r.syscall for r in pol.seccomp.rules} == {"clone", "ioctl"}
    assert "CAP_SYS_ADMIN" in pol.capabilities.deny
    assert conv.request.inside and conv.request.argv == ("sh",)


def test_a_bundle_filter_never_allows_a_set_id_mode(bdir: Path) -> None:
    """Engines' default filters allow chmod with any mode; under ours an rw bind would then
    get a set-uid file of its owner (root) on the host (the fixes' re-attack, High)."""
    from sandbox.oci.convert import convert
    from sandbox.seccomp.setid import MODE_ARG, SETID_BITS

    def sec(d):
        d["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": [*MODE_ARG, "openat2", "read"], "action": "SCMP_ACT_ALLOW"}],
        }

    pol = convert(check(bdir, sec)).profile.policy
    rules = {r.syscall: r for r in pol.seccomp.rules}
    for name, arg in MODE_ARG.items():
        assert name not in pol.seccomp.allow, name
        r = rules[name]
        assert (r.arg, r.mask, r.values, r.match, r.otherwise) == (
            arg,
            SETID_BITS,
            [0],
            "allow",
            "EPERM",
        )
    assert pol.seccomp.errno["openat2"] == "ENOSYS"


def test_the_groups_refuse_set_id_modes_where_setid_says() -> None:
    """fs_read/fs_write's TOML rules and sandbox.seccomp.setid (used by OCI and learn) agree."""
    import tomllib

    from sandbox.seccomp.setid import MODE_ARG, setid_rule

    root = Path(__file__).parents[3] / "seccomp_policies" / "groups"
    found = {}
    for group in ("fs_read", "fs_write"):
        doc = tomllib.loads((root / f"{group}.toml").read_text())
        found |= {r["syscall"]: r for r in doc.get("rules", []) if r["syscall"] in MODE_ARG}
    assert found == {n: setid_rule(n) for n in MODE_ARG}
    fs_read = tomllib.loads((root / "fs_read.toml").read_text())
    assert fs_read["errno"] == {"openat2": "ENOSYS"}


def test_conditional_allows_become_rules_never_wider() -> None:
    from sandbox.oci.convert import _conditional_rules

    sec = {
        "syscalls": [
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}],
            }
            for v in (0, 8)
        ]
        + [
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 22,
                "args": [
                    {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                    {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"},
                ],
            },
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}],
            },
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}],
            },
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"},
                ],
            },
        ]
    }
    rules, kept = _conditional_rules(sec, {"allow": [], "errno": {}, "deny": []})
    by = {r["syscall"]: r for r in rules}
    assert kept == ["personality", "socket"]  # kill: two conditions, left to the default
    assert by["personality"]["values"] == [0, 8] and by["personality"]["match"] == "allow"
    assert by["socket"] == {
        "syscall": "socket",
        "arg": 2,
        "mask": (1 << 64) - 1,
        "values": [9],
        "match": "default",
        "otherwise": "allow",
    }


def test_annotation_profile_never_allows_more_than_either_side(bdir: Path) -> None:
    from sandbox.oci.convert import convert
    from sandbox.seccomp.groups import resolve

    def sec(d):
        d["annotations"] = {B.PROFILE_ANNOTATION: "strict"}
        d["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {
                    "names": ["read", "write", "exit_group", "socket", "ptrace"],
                    "action": "SCMP_ACT_ALLOW",
                }
            ],
        }
        d["linux"]["resources"] = {"memory": {"limit": 1 << 40}, "pids": {"limit": 5}}

    conv = convert(check(bdir, sec))
    pol = conv.profile.policy
    allowed = set(resolve(pol.seccomp).allow)
    assert allowed <= {"read", "write", "exit_group", "socket", "ptrace"}
    assert "ptrace" not in allowed  # strict denies it
    assert "openat" not in allowed  # the bundle does not allow it
    assert pol.capabilities.keep == []  # strict keeps none
    assert pol.limits.memory == 256 << 20  # strict's, the smaller
    assert pol.limits.processes == 5  # the bundle's, the smaller
    assert pol.name == "strict"


# ------------------------------------------------------------ command line ----
def test_parse_runc_command_lines() -> None:
    a = parse(
        [
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file=/p",
            "id1",
        ]
    )
    assert (a.cmd, a.glob["--root"], a.opts["--bundle"], a.opts["--pid-file"], a.rest) == (
        "create",
        "/r",
        "/b",
        "/p",
        ["id1"],
    )
    k = parse(["kill", "--all", "id2", "KILL"])
    assert k.opts["--all"] is True and k.rest == ["id2", "KILL"]
    e = parse(["exec", "-t", "--env", "A=1", "-e", "B=2", "id3", "sh", "-c", "ls -l"])
    assert e.opts["--env"] == ["A=1", "B=2"] and e.rest == ["id3", "sh", "-c", "ls -l"]
    assert parse(["--version"]).cmd == "version"
    for bad in (["frob"], ["create", "--nope", "x"], ["checkpoint", "x"], []):
        with pytest.raises(UsageError):
            parse(bad)


def test_signals() -> None:
    assert parse_signal("9") == parse_signal("KILL") == parse_signal("SIGKILL") == 9
    with pytest.raises(UsageError):
        parse_signal("SIGNOPE")


def test_state_json_shape() -> None:
    from sandbox.oci.state import oci_state

    out = oci_state({"id": "a", "status": "stopped", "pid": 5, "bundle": "/b"})
    assert out["pid"] == 0 and out["status"] == "stopped"
    assert json.loads(json.dumps(out))["ociVersion"].startswith("1.")


def test_profile_limits_reach_the_leaf() -> None:
    """Profiles name hugetlb/net_cls/net_prio too: required controllers of the leaf."""
    from sandbox.compile import cgroup_request
    from sandbox.policy.load import load_profile

    prof = load_profile(
        "strict",
        {"limits": {"hugetlb": {"2MB": "4M"}, "net_classid": 0x100001, "net_prio": {"lo": 5}}},
    )
    req = cgroup_request(prof.policy)
    assert dict(req.limits.hugetlb) == {"2MB": 4 << 20}
    assert req.limits.net_classid == 0x100001
    assert dict(req.limits.net_prio) == {"lo": 5}
    assert {"hugetlb", "net_cls", "net_prio"} <= req.required


def test_masked_equalities_under_one_mask_become_one_rule() -> None:
    """An exported option list (prctl's, as `sandbox seccomp export` writes it) stays
    whole: every allowed value, under the JSON's own mask; a mixed mask does not merge."""
    from sandbox.oci.convert import _conditional_rules

    def masked(name: str, mask: int, value: int) -> dict[str, object]:
        return {
            "names": [name],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}],
        }

    sec = {
        "syscalls": [masked("prctl", 0xFFFFFFFF, v) for v in (16, 1, 15)]
        + [masked("madvise", 0xFF, 4), masked("madvise", 0xFFFF, 8)]
    }
    rules, _ = _conditional_rules(sec, {"allow": [], "errno": {}, "deny": []})
    by = {r["syscall"]: r for r in rules}
    assert by["prctl"] == {
        "syscall": "prctl",
        "arg": 0,
        "mask": 0xFFFFFFFF,
        "values": [1, 15, 16],
        "match": "allow",
        "otherwise": "default",
    }
    # Two masks: one rule cannot say both; one of them alone is a subset of the JSON.
    assert by["madvise"]["values"] in ([4], [8]) and by["madvise"]["match"] == "allow"


def test_records_are_pruned_by_container_oldest_first(tmp_path: Path) -> None:
    """The records directory keeps the newest N containers' files, all of each."""
    import os

    from sandbox.oci.shim import prune_records

    for i, cid in enumerate(["a.1", "b", "c", "d"]):
        for suffix in (".json", ".error", ".exec.jsonl"):
            p = tmp_path / f"{cid}{suffix}"
            p.write_text("{}")
            os.utime(p, ns=(i * 10**9, i * 10**9))
    (tmp_path / ".b.tmp").write_text("")  # a record being written is not a container
    (tmp_path / "notes.txt").write_text("")  # nor anything else someone put there
    os.utime(tmp_path / "b.exec.jsonl", ns=(9 * 10**9, 9 * 10**9))  # b's exec: newest
    prune_records(str(tmp_path), 2)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [
            ".b.tmp",
            "notes.txt",
            "b.json",
            "b.error",
            "b.exec.jsonl",
            "d.json",
            "d.error",
            "d.exec.jsonl",
        ]
    )
    prune_records(str(tmp_path), 5)  # under the cap: nothing goes
    assert len(list(tmp_path.iterdir())) == len(left)


@pytest.mark.parametrize("value", ["/etc/shadow", "/etc/sandbox/profiles/../../shadow", "x.toml"])
def test_annotation_path_outside_the_profile_dirs_is_refused_unread(
    bdir: Path, monkeypatch, value: str
) -> None:
    """The pod author's annotation never makes the runtime (root) read a host file: no
    existence or parse oracle (second attack round, low)."""
    from sandbox.errors import PolicyError
    from sandbox.oci import convert as conv_mod
    from sandbox.policy import cache

    monkeypatch.delenv(conv_mod.PROFILE_DIRS_ENV, raising=False)
    opened: list[str] = []
    real = cache.load
    monkeypatch.setattr(cache, "load", lambda name, *a, **k: opened.append(name) or real(name))

    def ann(d):
        d["annotations"] = {B.PROFILE_ANNOTATION: value}

    with pytest.raises(PolicyError, match="SANDBOX_RUNTIME_PROFILES") as e:
        conv_mod.convert(check(bdir, ann))
    assert "shadow" not in str(e.value).split("must be under")[1]
    assert opened == []


def test_annotation_path_under_a_profile_dir_is_used(bdir: Path, tmp_path: Path, monkeypatch):
    from sandbox.oci.convert import PROFILE_DIRS_ENV, convert

    allowed = tmp_path / "profiles"
    allowed.mkdir()
    (allowed / "mine.toml").write_text('extends = "strict"\nname = "mine"\n')
    monkeypatch.setenv(PROFILE_DIRS_ENV, f"/nonexistent:{allowed}")

    def ann(d):
        d["annotations"] = {B.PROFILE_ANNOTATION: str(allowed / "mine.toml")}

    assert convert(check(bdir, ann)).profile.policy.name == "mine"


# ----------------------------------------------------------------- devpts ----
PODMAN_DEVPTS = {
    "destination": "/dev/pts",
    "type": "devpts",
    "source": "devpts",
    "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
}


def with_devpts(opts=None, dest="/dev/pts", terminal=True):
    def add(d):
        m = dict(PODMAN_DEVPTS, destination=dest)
        if opts is not None:
            m["options"] = opts
        d["mounts"].append(m)
        d["process"]["terminal"] = terminal

    return add


def test_a_devpts_mount_is_the_containers_own(bdir: Path) -> None:
    from sandbox.fs.ops import DevptsMount

    b = check(bdir, with_devpts())
    assert b.devpts == DevptsMount(mode=0o620, ptmxmode=0o666, gid=5)
    assert b.devpts.options() == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert not any("devpts" in n for n in b.notes)  # made, not skipped
    assert [m.kind for m in b.mounts] == ["devpts"]
    # without options: the kernel's defaults, newinstance all the same
    assert check(bdir, with_devpts([])).devpts.options() == "newinstance,ptmxmode=0000,mode=0600"


@pytest.mark.parametrize(
    ("opts", "dest", "where", "what"),
    [
        (["nodev"], "/dev/pts", "mounts[1].options[0]", "devpts option 'nodev'"),
        (["ro"], "/dev/pts", "mounts[1].options[0]", "devpts option 'ro'"),
        (["newinstance", "size=1m"], "/dev/pts", "mounts[1].options[1]", "'size=1m'"),
        (["mode=0999"], "/dev/pts", "mounts[1].options[0]", "not a number"),
        (["ptmxmode=04666"], "/dev/pts", "mounts[1].options[0]", "at most 0777"),
        (["gid=-1"], "/dev/pts", "mounts[1].options[0]", "out of range"),
        (["gid=tty"], "/dev/pts", "mounts[1].options[0]", "not a number"),
        ([], "/mnt/pts", "mounts[1].destination", "devpts is mounted at /dev/pts only"),
    ],
)
def test_devpts_refusals_name_the_json_path(bdir: Path, opts, dest, where, what) -> None:
    with pytest.raises(B.BundleError) as e:
        check(bdir, with_devpts(opts, dest))
    msg = str(e.value)
    assert where in msg and what in msg and "\n" not in msg, msg


def test_a_second_devpts_is_refused(bdir: Path) -> None:
    def two(d):
        d["mounts"] += [dict(PODMAN_DEVPTS), dict(PODMAN_DEVPTS)]

    with pytest.raises(B.BundleError, match=r"mounts\[2\]: a second devpts mount"):
        check(bdir, two)


def _compiled(bundle):
    """A compiled run as far as ``adjust`` reads it: the plan and the leaf's request."""
    from dataclasses import dataclass

    from sandbox.cgroups.model import CgroupLimits
    from sandbox.compile import CgroupRequest
    from sandbox.fs.ops import MountPlan
    from sandbox.plan import LaunchPlan

    @dataclass(frozen=True)
    class Compiled:
        plan: LaunchPlan
        cgroup: CgroupRequest | None

    mounts = MountPlan((bundle.root,), 1 << 20, 100, (), (), (), (), True)
    plan = LaunchPlan(
        "r1", "d", 0, 0, 61001, 61001, "slot", "h", 0, True, False, mounts, "/bin/sh",
        ("sh",), (), "/",
    )  # fmt: skip
    return Compiled(plan, CgroupRequest(CgroupLimits(), frozenset(), False))


def test_adjust_mounts_devpts_and_asks_for_the_console(bdir: Path) -> None:
    from sandbox.cgroups.model import DEFAULT_DEVICES, DEVICES_TTY
    from sandbox.host import probe
    from sandbox.oci.convert import adjust

    b = check(bdir, with_devpts())
    out = adjust(_compiled(b), b, probe())
    # gid 5 is not mapped in the container's user namespace (only the process's 0 is)
    assert out.plan.mounts.devpts.options() == "newinstance,ptmxmode=0666,mode=0620"
    assert ("ptmx", "pts/ptmx") in out.plan.mounts.dev_links
    assert out.plan.console
    assert out.cgroup.limits.devices == (*DEFAULT_DEVICES, *DEVICES_TTY)
    # the process's own gid stays
    b0 = check(bdir, with_devpts(["gid=0", "mode=0620"], terminal=False))
    out0 = adjust(_compiled(b0), b0, probe())
    assert out0.plan.mounts.devpts.gid == 0 and not out0.plan.console


def test_adjust_without_devpts_keeps_the_minimal_dev(bdir: Path) -> None:
    from sandbox.host import probe
    from sandbox.oci.convert import adjust

    b = check(bdir)
    out = adjust(_compiled(b), b, probe())
    assert out.plan.mounts.devpts is None and not out.plan.console
    assert not any(name == "ptmx" for name, _ in out.plan.mounts.dev_links)
    assert out.cgroup.limits.devices is None  # DEFAULT_DEVICES: no tty, ptmx or pts


def test_a_terminal_needs_devpts(bdir: Path) -> None:
    from sandbox.errors import PolicyError
    from sandbox.host import probe
    from sandbox.oci.convert import adjust

    def term(d):
        d["process"]["terminal"] = True

    b = check(bdir, term)
    with pytest.raises(PolicyError, match=r"process\.terminal needs a devpts mount at /dev/pts"):
        adjust(_compiled(b), b, probe())


def test_unmapped_devpts_ids_are_noted(bdir: Path) -> None:
    from sandbox.oci.convert import convert

    conv = convert(check(bdir, with_devpts()))
    assert any(n.startswith("/dev/pts: gid=5 is not mapped") for n in conv.notes), conv.notes


def test_the_default_spec_has_the_containers_own_devpts(tmp_path: Path) -> None:
    """`sandbox-runtime spec` writes a bundle this runtime takes, /dev/pts included
    (as runc's does); without gid=5, which the container's user namespace lacks."""
    from sandbox.oci.spec import default_config

    (tmp_path / "rootfs").mkdir()
    b = B.parse(default_config(), str(tmp_path))
    assert b.devpts is not None and b.devpts.gid is None
    assert b.devpts.options() == "newinstance,ptmxmode=0666,mode=0620"


@pytest.mark.parametrize(
    ("gid", "value", "want"),
    [
        (0, "0 0", "0 0"),  # podman's default for root: unchanged
        (1000, "0 0", None),  # no gid of the container in it: not written (empty)
        (1000, "0 2147483647", "1000 1000"),  # every gid: the container's only one
        (5, "1 10", "5 5"),
    ],
)
def test_ping_group_range_is_clipped_to_the_mapped_gid(bdir: Path, gid, value, want) -> None:
    from sandbox.oci.convert import PING_GROUPS, _sysctl

    def mutate(d):
        d["process"]["user"] = {"uid": gid, "gid": gid}
        d["linux"]["sysctl"] = {PING_GROUPS: value, "net.ipv4.ip_forward": "0"}

    got, notes = _sysctl(check(bdir, mutate))
    assert ("net.ipv4.ip_forward", "0") in got
    assert dict(got).get(PING_GROUPS) == want
    assert bool(notes) == (want != value)


def test_ping_group_range_that_is_not_two_gids_is_refused(bdir: Path) -> None:
    from sandbox.errors import PolicyError
    from sandbox.oci.convert import PING_GROUPS, _sysctl

    b = check(bdir, lambda d: d["linux"].update(sysctl={PING_GROUPS: "0"}))
    with pytest.raises(PolicyError, match="ping_group_range"):
        _sysctl(b)
