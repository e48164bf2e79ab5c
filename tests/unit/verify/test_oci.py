"""seccomp.oci: OCI JSON import never widens; export builds (libseccomp) to the same filter."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pyseccomp
import pytest

from sandbox.errors import PolicyError
from sandbox.policy.load import load_profile
from sandbox.policy.model import Seccomp
from sandbox.seccomp import reference
from sandbox.seccomp.actions import SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_USER_NOTIF
from sandbox.seccomp.bpf import Program
from sandbox.seccomp.groups import resolve
from sandbox.seccomp.oci import export, import_oci
from sandbox.seccomp.tables import ARCHES, table
from sandbox.verify.simulate import cases

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "oci"


def moby() -> dict:
    return json.loads((FIXTURES / "moby-like.json").read_text())


def test_moby_profile_import() -> None:
    imp = import_oci(moby(), source="moby-like.json", kernel=(6, 1))
    sec = imp.seccomp
    assert sec["default_action"] == "errno" and sec["default_errno"] == "EPERM"
    assert {"read", "write", "ptrace", "arch_prctl", "getppid"} <= set(sec["allow"])
    # conditional allows are left to the default; the note names the reviewed group
    assert "socket" not in sec["allow"] and "personality" not in sec["allow"]
    notes = "\n".join(imp.notes)
    assert "socket: allowed only under argument conditions" in notes and "sockets_local" in notes
    # a conditional refusal (TIOCSTI) cannot be kept, so the unconditional allow goes
    assert "ioctl" not in sec["allow"] and "ioctl: refused under argument conditions" in notes
    assert sec["errno"] == {"clone3": "ENOSYS"}
    assert sec["deny"] == ["kill"] and "SCMP_ACT_KILL" not in sec["default_action"]
    assert "mount" not in sec["allow"] and "open_by_handle_at" not in sec["allow"]
    assert 'only with "CAP_SYS_ADMIN"' in notes and 'only for "arm", "arm64"' in notes
    assert 'not an x86 syscall): "no_such_syscall_anywhere"' in notes
    assert "SCMP_ACT_LOG imported as allow" in notes and "i386 and x32 are listed" in notes
    Seccomp.model_validate(sec)  # a valid section
    resolve(Seccomp.model_validate(sec))


def test_moby_conditions_kernel_and_caps() -> None:
    old = import_oci(moby(), kernel=(4, 4)).seccomp
    assert "ptrace" not in old["allow"]
    admin = import_oci(moby(), caps=frozenset({"CAP_SYS_ADMIN"})).seccomp
    assert {"mount", "unshare"} <= set(admin["allow"]) and "clone3" not in admin["errno"]


def test_config_json_shape() -> None:
    doc = json.loads((FIXTURES / "config.json").read_text())
    sec = import_oci(doc).seccomp
    assert sec["default_action"] == "kill_process"
    assert sec["allow"] == ["exit_group", "read", "write"] and sec["errno"] == {"openat": "EACCES"}


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"nothing": 1}, "expected a seccomp profile"),
        ({"linux": {}}, "no linux.seccomp"),
        ({"defaultAction": "SCMP_ACT_BOGUS"}, "defaultAction: unsupported action"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "X"}]},
            "syscalls[0]: action: unsupported action 'X'",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read", "action": "X"}]},
            "syscalls[0]: names must be a list",
        ),
        (
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 99999},
            "errnoRet 99999 is not an errno",
        ),
    ],
)
def test_bad_documents_name_the_json_path(doc: dict, needle: str) -> None:
    with pytest.raises(PolicyError) as info:
        import_oci(doc, source="p.json")
    assert needle in str(info.value) and str(info.value).startswith("p.json")


def _oci_to_bpf(doc: dict) -> bytes:
    """Build the exported JSON with libseccomp the way runc does (default, rules, one arch)."""
    ops = {
        "SCMP_CMP_EQ": pyseccomp.EQ,
        "SCMP_CMP_NE": pyseccomp.NE,
        "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ,
    }

    def action(entry: dict, key: str = "action", errno_key: str = "errnoRet") -> int:
        name = entry[key].removeprefix("SCMP_ACT_")
        if name == "ERRNO":
            return pyseccomp.ERRNO(entry[errno_key])
        return {
            "ALLOW": pyseccomp.ALLOW,
            "KILL_PROCESS": pyseccomp.KILL_PROCESS,
            "NOTIFY": pyseccomp.NOTIFY,
            "KILL_THREAD": pyseccomp.KILL,
            "LOG": pyseccomp.LOG,
            "TRAP": pyseccomp.TRAP,
        }[name]

    filt = pyseccomp.SyscallFilter(action(doc, "defaultAction", "defaultErrnoRet"))
    filt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    for entry in doc["syscalls"]:
        for name in entry["names"]:
            args = [
                pyseccomp.Arg(a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0))
                for a in entry.get("args", [])
            ]
            filt.add_rule(action(entry), name, *args)
    r, w = os.pipe()
    with os.fdopen(w, "wb") as f:
        filt.export_bpf(f)
    with os.fdopen(r, "rb") as f:
        return f.read()


@pytest.mark.parametrize("name", ["strict", "interp", "compile"])
def test_export_builds_to_the_same_filter_semantics(name: str) -> None:
    spec = resolve(load_profile(name).policy.seccomp)
    doc = export(spec)
    assert doc["architectures"] == ["SCMP_ARCH_X86_64"]
    assert all(e["action"] != doc["defaultAction"] for e in doc["syscalls"])
    prog = Program.from_bytes(_oci_to_bpf(json.loads(json.dumps(doc))))
    info = ARCHES["x86_64"]
    for case in cases(spec):
        if case.abi != "x86_64":
            continue
        # An OCI runtime has no listener of ours: it kills foreign ABIs itself.
        oci_spec = dataclasses.replace(spec, bad_arch_action="kill_process")
        want = reference.expected(oci_spec, "x86_64", info.audit_arch, case.nr, case.args)
        if want == SECCOMP_RET_USER_NOTIF:  # no listener in an engine: exported as the kill
            want = SECCOMP_RET_KILL_PROCESS
        assert prog.evaluate(case.nr, info.audit_arch, case.args) == want, case.label


def test_export_then_import_keeps_a_rule_free_policy() -> None:
    pol = Seccomp(
        default_action="errno",
        default_errno="EACCES",
        allow=["read", "write", "getpid"],
        errno={"openat": "ENOENT", "clone3": "ENOSYS"},
        deny=["ptrace"],
    )
    spec = resolve(pol)
    back = resolve(Seccomp.model_validate(import_oci(export(spec)).seccomp))
    for name in table("x86_64").by_name:
        assert reference.syscall_ret(back, name, ()) == reference.syscall_ret(spec, name, ()), name


def test_import_of_an_export_never_allows_more() -> None:
    spec = resolve(load_profile("strict").policy.seccomp)
    back = resolve(Seccomp.model_validate(import_oci(export(spec)).seccomp))
    assert reference.runnable(back, "x86_64") <= reference.runnable(spec, "x86_64")
