"""The test-only ablation hook (sandbox.ablation) and what the child does with it.

The escape suite relies on each ablation switching off exactly its layer, so
the plan changes are pinned here, and so is the secure default: a plan that
nobody ablated is left untouched.
"""

from __future__ import annotations

import resource
from dataclasses import replace

import pytest
from test_launcher_order import make_plan, run

from sandbox import ablation
from sandbox.errors import PolicyError
from sandbox.fs.mounts import attach, prepare_detached
from sandbox.plan import Rlimit
from sandbox.syscalls.consts import CloneFlag, MountAttr, MountFlag, Prctl
from sandbox.syscalls.recording import RecordingSyscalls

CAP_SYS_ADMIN = 1 << 21


def test_no_ablation_leaves_the_plan_alone():
    plan = make_plan()
    assert ablation.apply(plan, frozenset()) is plan
    assert plan.mounts.overlay and plan.mounts.nosuid and plan.no_new_privs


def test_unknown_names_are_refused():
    with pytest.raises(PolicyError, match="unknown --test-ablate landlok"):
        ablation.check(frozenset({"landlok"}))
    ablation.check(frozenset(ablation.NAMES))


def test_each_ablation_changes_only_its_part():
    plan = make_plan(
        rlimits=(Rlimit(resource.RLIMIT_CORE, 0, 0), Rlimit(resource.RLIMIT_NPROC, 64, 64))
    )
    ns = ablation.apply(plan, frozenset({"namespaces"}))
    assert ns.nested_userns and not ns.unshare_flags & CloneFlag.CLONE_NEWNET
    assert ns.unshare_flags | CloneFlag.CLONE_NEWNET == plan.unshare_flags
    assert not ablation.apply(plan, frozenset({"overlay"})).mounts.overlay
    assert not ablation.apply(plan, frozenset({"nosuid"})).mounts.nosuid
    assert not ablation.apply(plan, frozenset({"no_new_privs"})).no_new_privs
    caps = ablation.apply(plan, frozenset({"capabilities"}))
    assert caps.caps_keep & CAP_SYS_ADMIN and caps.drop_caps
    nproc = ablation.apply(plan, frozenset({"rlimit_nproc"}))
    assert [r.resource for r in nproc.rlimits] == [resource.RLIMIT_CORE]
    # layers whose artifact is simply not built leave the plan as it is
    assert ablation.apply(plan, frozenset({"seccomp", "landlock"})) == plan
    assert ablation.notes(frozenset({"nosuid", "seccomp"})) == (
        "test hook: bind mounts without nosuid (--test-ablate nosuid)",
    )


def test_without_nnp_cap_sys_admin_is_held_only_until_execve():
    """Landlock and seccomp need NNP or CAP_SYS_ADMIN: it stays effective and
    permitted, never inheritable or ambient, so execve (non-root) clears it."""
    calls = run(make_plan(no_new_privs=False)).calls
    assert not [c for c in calls if c.name == "prctl" and c.args[0] == Prctl.PR_SET_NO_NEW_PRIVS]
    capset = [c for c in calls if c.name == "capset"]
    assert capset[0].args == (CAP_SYS_ADMIN, CAP_SYS_ADMIN, 0)
    raised = [c for c in calls if c.name == "prctl" and c.args[0] == Prctl.PR_CAP_AMBIENT]
    assert all(c.args[1] != 2 for c in raised)  # no PR_CAP_AMBIENT_RAISE
    names = [c.name for c in calls]
    assert names.index("capset") < names.index("landlock_restrict_self")


def _init_window(calls):
    """Indices of the container init's own calls: between the two forks."""
    forks = [i for i, c in enumerate(calls) if c.name == "fork"]
    return forks[0], forks[1]


def test_init_has_default_signal_dispositions():
    calls = run(make_plan()).calls
    start, end = _init_window(calls)
    assert any(c.name == "reset_signals" for c in calls[start:end])


def test_init_hides_the_callers_command_line():
    calls = run(make_plan()).calls
    start, end = _init_window(calls)
    (hidden,) = [c for c in calls[start:end] if c.name == "set_cmdline"]
    assert hidden.args == (b"sandbox-init",)


def test_overlay_ablated_binds_the_lower_layer_writable():
    plan = replace(make_plan().mounts, overlay=False)
    sc = RecordingSyscalls()
    mnt = prepare_detached(plan, sc, (61001, 61001))
    assert ("overlay",) not in [c.args for c in sc.calls if c.name == "fsopen"]
    first_tree = next(c for c in sc.calls if c.name == "open_tree")
    assert first_tree.args[1] == plan.lowers[0]
    attach(plan, mnt, sc)
    remounts = [c for c in sc.calls if c.name == "mount" and c.args[3] & MountFlag.MS_REMOUNT]
    assert remounts == []


def test_nosuid_ablated_only_on_binds():
    plan = make_plan().mounts
    for nosuid in (True, False):
        sc = RecordingSyscalls()
        prepare_detached(replace(plan, nosuid=nosuid), sc, (61001, 61001))
        (bind_attrs,) = [c.args[3] for c in sc.calls if c.name == "mount_setattr"]
        assert bool(bind_attrs & MountAttr.MOUNT_ATTR_NOSUID) == nosuid
        _upper, root, dev = [c.args[1] for c in sc.calls if c.name == "fsmount"]
        assert root & dev & MountAttr.MOUNT_ATTR_NOSUID
