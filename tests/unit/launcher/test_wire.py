"""The plan encoding and its only parser, the native decoder (``--decode``).

Good plans decode to the same counts; each kind of malformed input is
refused with a message naming the field and the problem (never a crash, never
a partial plan). The fuzzing of the decoder is in test_native_fuzz.py.
"""

from __future__ import annotations

import struct
import subprocess
from dataclasses import replace

import pytest
from test_launcher_order import make_plan

from sandbox.launcher import native, wire
from sandbox.plan import LaunchPlan, SeccompPlan


def decode(tmp_path, data: bytes) -> tuple[int, str]:
    native.check_binary()
    f = tmp_path / "plan.bin"
    f.write_bytes(data)
    p = subprocess.run(
        [str(native.BINARY), "--decode", str(f)], capture_output=True, text=True, timeout=10
    )
    return p.returncode, (p.stdout + p.stderr).strip()


def test_a_plan_decodes_with_its_counts(tmp_path):
    plan = make_plan(collect=("out.txt", "a/b"))
    rc, out = decode(tmp_path, wire.encode_plan(plan))
    assert rc == 0, out
    assert out == (
        f"ok run_id=r1 argc=2 envc=1 binds=1 rules={len(plan.landlock.rules)} bpf=1 collect=2"
    )


def test_layers_off_encode_too(tmp_path):
    plan = make_plan(apparmor_profile=None, landlock=None, seccomp=None, no_new_privs=False)
    rc, out = decode(tmp_path, wire.encode_plan(plan))
    assert rc == 0 and "rules=0 bpf=0" in out, out


def _corrupt(data: bytes, off: int, new: bytes) -> bytes:
    return data[:off] + new + data[off + len(new) :]


def _fix_len(data: bytes) -> bytes:
    return data[:8] + struct.pack("<I", len(data)) + data[12:]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"XXXX" + d[4:], "not a plan (magic)"),
        (lambda d: _corrupt(d, 4, struct.pack("<I", 99)), "plan version 99"),
        (lambda d: d[:-1], "length in the header differs"),
        (lambda d: _fix_len(d[:40]), "truncated"),
        (lambda d: _fix_len(d + b"\0"), "trailing bytes"),
        # run_id's length says 1000: over its bound
        (lambda d: _corrupt(d, 12, struct.pack("<I", 1000)), "field run_id"),
        # run_id's NUL replaced
        (lambda d: _corrupt(d, 18, b"x"), "not NUL-terminated"),
        (lambda d: _corrupt(d, 16, b"\0"), "NUL inside a string"),
    ],
)
def test_malformed_plans_are_refused_with_the_reason(tmp_path, mutate, message):
    data = wire.encode_plan(make_plan(run_id="r1"))
    rc, out = decode(tmp_path, mutate(data))
    assert rc == 1, out
    assert message in out
    assert "malformed plan" in out or "plan version" in out


def test_bounds_are_checked_before_allocation(tmp_path):
    """A count near 2**32 must not be believed (every item takes bytes)."""
    plan = make_plan()
    data = wire.encode_plan(plan)
    lowers_at = data.index(b"/var/lib/sandbox/images/x") - 8  # the count before the first string
    bad = _corrupt(data, lowers_at, struct.pack("<I", 0xFFFFFFF0))
    rc, out = decode(tmp_path, bad)
    assert rc == 1 and "mounts.lowers" in out and "count above its bound" in out, out


def test_values_the_format_cannot_carry_are_refused_by_the_encoder():
    with pytest.raises(ValueError, match="argv: NUL"):
        wire.encode_plan(make_plan(argv=("/box/prog", "a\0b")))
    with pytest.raises(ValueError, match="ids: -1"):
        wire.encode_plan(make_plan(inside_uid=-1))
    with pytest.raises(ValueError, match="argv: 5000 entries"):
        wire.encode_plan(make_plan(argv=("x",) * 5000))


def test_seccomp_length_must_be_whole_instructions(tmp_path):
    plan = make_plan(seccomp=SeccompPlan(b"\x06\x00\x00\x00\x00\x00\xff", 0))
    rc, out = decode(tmp_path, wire.encode_plan(plan))
    assert rc == 1 and "multiple of 8" in out, out


def test_rlimit_infinity_round_trips_as_all_ones():
    w = wire.Writer()
    w.u64(-1)
    assert bytes(w.buf) == b"\xff" * 8


def test_prepared_netns_only_for_a_payload_without_capabilities():
    plan = make_plan()
    assert wire.prepared_netns_ok(plan)
    assert not wire.prepared_netns_ok(replace(plan, caps_keep=1 << 13))
    assert not wire.prepared_netns_ok(replace(plan, drop_caps=False))
    assert not wire.prepared_netns_ok(replace(plan, id_mode="rootless"))
    assert not wire.prepared_netns_ok(replace(plan, unshare_flags=plan.unshare_flags & ~0x40000000))


def test_replies_decode():
    assert wire.decode_reply(struct.pack("<I", wire.R_PONG)) == {"op": "pong"}
    raw = struct.pack("<II", wire.R_EXITED, 2) + b"r1\0" + struct.pack("<i", 256)
    assert wire.decode_reply(raw) == {"op": "exited", "run_id": "r1", "status": 256}
    with pytest.raises(ValueError):
        wire.decode_reply(struct.pack("<I", 999))
    with pytest.raises(ValueError):
        wire.decode_reply(struct.pack("<II", wire.R_SPAWNED, 50) + b"r1")


def test_every_field_is_encoded():
    """A LaunchPlan field added without its encoding (and its C decoding) fails here."""
    import dataclasses

    known = {
        "run_id", "policy_digest", "inside_uid", "inside_gid", "host_uid", "host_gid",
        "id_mode", "hostname", "unshare_flags", "cgroupns", "nested_userns", "mounts",
        "exec_path", "argv", "env", "workdir", "apparmor_profile", "no_new_privs",
        "drop_caps", "caps_keep", "rlimits", "landlock", "seccomp", "join_cgroup",
        "collect", "collect_limit", "join_ns", "sysctl", "console",
        "version", "notes",  # not for the child: the wire has its own version
    }  # fmt: skip
    assert {f.name for f in dataclasses.fields(LaunchPlan)} == known


def _devpts_plan(**kw):
    from sandbox.fs.ops import DevptsMount

    plan = make_plan()
    pts = DevptsMount(**({"mode": 0o620, "ptmxmode": 0o666, "gid": 0} | kw))
    return replace(plan, mounts=replace(plan.mounts, devpts=pts), console=True)


def test_devpts_and_console_decode(tmp_path):
    """The devpts options travel field by field (the launcher writes the option
    string itself, newinstance always first) and the console flag with them."""
    rc, out = decode(tmp_path, wire.encode_plan(_devpts_plan()))
    assert rc == 0 and out.endswith(" devpts=620/666,gid=0 console"), out
    rc, out = decode(tmp_path, wire.encode_plan(_devpts_plan(gid=None, uid=7, max=4)))
    assert rc == 0 and out.endswith(" devpts=620/666,uid=7,max=4 console"), out
    plain = replace(_devpts_plan(), console=False)
    rc, out = decode(tmp_path, wire.encode_plan(plain))
    assert rc == 0 and out.endswith(" devpts=620/666,gid=0"), out


def test_a_console_without_devpts_is_refused_on_both_sides(tmp_path):
    plan = replace(make_plan(), console=True)
    with pytest.raises(ValueError, match=r"console: a console needs the run's own devpts"):
        wire.encode_plan(plan)
    # The C side refuses it too: the console flag set by hand on a plan without devpts.
    raw = bytearray(wire.encode_plan(make_plan()))
    assert raw[-1] == 0
    raw[-1] = 1
    rc, out = decode(tmp_path, bytes(raw))
    assert rc == 1 and "console" in out and "devpts" in out, out


@pytest.mark.parametrize("field", ["mode", "ptmxmode"])
def test_a_devpts_mode_above_0777_is_refused_on_both_sides(tmp_path, field):
    with pytest.raises(ValueError, match=r"mounts\.devpts: a mode is at most 0777"):
        wire.encode_plan(_devpts_plan(**{field: 0o4777}))
    good = wire.encode_plan(replace(_devpts_plan(), console=False))
    # mounts.devpts sits just before the plan's trailing fields; find its mode by value.
    at = good.index(struct.pack("<II", 0o620, 0o666))
    off = at if field == "mode" else at + 4
    rc, out = decode(tmp_path, _corrupt(good, off, struct.pack("<I", 0o4777)))
    assert rc == 1 and "mounts.devpts" in out and "at most 0777" in out, out


def _staged(**mounts_kw):
    from sandbox.fs.staging import BoxFile

    plan = make_plan()
    files = (BoxFile("a/x.txt", "/run/sandbox/runs/r1.files/0", 0o755), BoxFile("l", link="x"))
    return replace(plan, mounts=replace(plan.mounts, copy_in=files, **mounts_kw))


def test_staged_files_and_private_binds_decode(tmp_path):
    from sandbox.fs.ops import BindMount

    private = (BindMount("/usr", "/usr", False, True, private=True),)
    rc, out = decode(tmp_path, wire.encode_plan(_staged(binds=private)))
    assert rc == 0, out


@pytest.mark.parametrize(
    ("index", "change", "message"),
    [
        (0, {"mode": 0o4755}, "copy_in mode above 0777"),
        (1, {"link": ""}, "link target is empty"),
    ],
)
def test_bad_staged_entries_are_refused(tmp_path, index, change, message):
    plan = _staged()
    files = list(plan.mounts.copy_in)
    files[index] = replace(files[index], **change)
    bad = replace(plan, mounts=replace(plan.mounts, copy_in=tuple(files)))
    rc, out = decode(tmp_path, wire.encode_plan(bad))
    assert rc != 0 and message in out, out


def test_a_writable_private_bind_is_refused(tmp_path):
    from sandbox.fs.ops import BindMount

    bad = (BindMount("/srv", "/srv", True, True, private=True),)
    rc, out = decode(tmp_path, wire.encode_plan(_staged(binds=bad)))
    assert rc != 0 and "private bind is read-only" in out, out


def test_devpts_and_console_round_trip_the_python_servers_json():
    """The Python fork server gets the plan as JSON (sandbox.codec): nothing is lost."""
    from sandbox import codec

    plan = _devpts_plan(uid=3, max=8)
    assert codec.loads(LaunchPlan, codec.dumps(plan)) == plan
