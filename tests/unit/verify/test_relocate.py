"""The run path's verification kept by template: per-run host paths abstracted, never skipped.

Two containers of one image and config share a key; every hostile value in
what was abstracted (a rootfs of ``/``, a bind of ``/proc`` or ``/etc``, a
path granted that the rootfs lacks, a hostname without UTS) is still found
on a cache hit, because the placement checks run on every run's own paths.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from ocikit import config, make_rootfs

from sandbox.compile import Artifacts, CompiledRun, compile_run
from sandbox.errors import VerificationError
from sandbox.host import HostFacts
from sandbox.oci import bundle as bundle_mod
from sandbox.oci.convert import adjust, convert
from sandbox.policy import model
from sandbox.policy.load import load_profile
from sandbox.verify import cache, core, lint
from sandbox.verify.lint.consistency import DEFAULT_HOSTNAME, STRICT_REQUIRED
from sandbox.verify.relocate import template_policy

HOST = HostFacts(kernel=(6, 18), arch="x86_64", euid=0, landlock_abi=7, apparmor=False)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path / "state"))
    cache.clear_memory()
    yield
    cache.clear_memory()


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rootfs(tmp_path_factory.mktemp("image") / "rootfs")


def compiled(tmp: Path, rootfs: Path, name: str, **over: Any) -> CompiledRun:
    """A container of the busybox image, its bundle at its own path (as an engine's)."""
    b = tmp / name
    b.mkdir()
    (b / "rootfs").symlink_to(rootfs)  # the bundle loader resolves the root
    (b / "config.json").write_text(json.dumps(config(["true"], **over)))
    bundle = bundle_mod.load(str(b))
    conv = convert(bundle)
    return adjust(compile_run(conv.profile, HOST, conv.request, Artifacts(HOST)), bundle, HOST)


def _mounts(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        *extra,
    ]


def _bind(source: str, target: str, ro: bool = True) -> dict[str, Any]:
    return {
        "destination": target,
        "type": "bind",
        "source": source,
        "options": ["rbind", "ro" if ro else "rw", "nosuid", "nodev"],
    }


def test_two_containers_of_one_image_share_the_key(
    tmp_path: Path, rootfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    other = tmp_path / "hosts2"
    other.write_text("127.0.0.1 localhost\n")
    a = compiled(tmp_path, rootfs, "a", hostname="c1", mounts=_mounts(_bind(str(hosts), "/h")))
    b = compiled(tmp_path, rootfs, "b", hostname="c2", mounts=_mounts(_bind(str(other), "/h")))
    assert a.profile.digest != b.profile.digest  # the paths differ...
    assert cache.template_key(a, HOST) == cache.template_key(b, HOST)  # ...the template does not
    first = cache.verify_run(a, HOST)
    kept = tmp_path / "state" / "verified"
    assert (kept / f"{cache.template_key(a, HOST)}.json").exists()
    assert (kept / f"{cache.run_key(a, HOST)}.json").exists()
    cache.clear_memory()
    # the second container never runs the template's checks again
    monkeypatch.setattr(core, "check_template", lambda *a, **k: pytest.fail("checked again"))
    entry = kept / f"{cache.template_key(a, HOST)}.json"
    os.utime(entry, (1, 1))
    second = cache.verify_run(b, HOST)
    assert entry.stat().st_mtime > 1  # a hit keeps the entry newest, out of pruning's way
    assert second.source.endswith("b/config.json") and first.source.endswith("a/config.json")
    assert second.policy_digest == core.policy_digest(b.verify_policy)


def _full(c: CompiledRun) -> Any:
    prof = dataclasses.replace(c.profile, policy=c.verify_policy, known_digest=None)
    return core.check(
        prof,
        HOST,
        seccomp=c.seccomp,
        landlock=c.landlock,
        apparmor=c.apparmor,
        mounts=c.plan.mounts,
    )


def test_a_hit_is_the_full_check(tmp_path: Path, rootfs: Path) -> None:
    c = compiled(tmp_path, rootfs, "a")
    cache.verify_run(c, HOST)
    hit = cache.verify_run(c, HOST)
    assert hit.hash == _full(c).hash


def test_different_bytes_are_a_different_key(tmp_path: Path, rootfs: Path) -> None:
    a = compiled(tmp_path, rootfs, "a")
    b = compiled(tmp_path, rootfs, "b", process={**config(["true"])["process"], "args": ["sh"]})
    assert a.seccomp is not None
    patched = dataclasses.replace(a, seccomp=dataclasses.replace(a.seccomp, bpf=a.seccomp.bpf[:-8]))
    keys = {cache.template_key(x, HOST) for x in (a, patched)}
    assert len(keys) == 2
    ro = compiled(tmp_path, rootfs, "ro", root={"path": "rootfs", "readonly": True})
    assert cache.template_key(ro, HOST) != cache.template_key(a, HOST)  # the mount plan's shape
    assert cache.template_key(b, HOST) == cache.template_key(
        a, HOST
    )  # argv is not loaded by the kernel


def _hostile(tmp: Path, rootfs: Path, source: str, ro: bool = True) -> CompiledRun:
    return compiled(
        tmp, rootfs, f"h{abs(hash((source, ro)))}", mounts=_mounts(_bind(source, "/x", ro))
    )


@pytest.mark.parametrize(
    ("source", "ro", "rule"),
    [
        ("/proc", True, "SBX135"),
        ("/etc", True, "SBX136"),
        ("/root", False, "SBX130"),
    ],
)
def test_a_hostile_placement_is_found_on_a_hit(
    tmp_path: Path, rootfs: Path, source: str, ro: bool, rule: str
) -> None:
    """The benign sibling verified first, the hostile one (same template) hits its entry."""
    benign = tmp_path / "benign"
    benign.mkdir()
    good = _hostile(tmp_path, rootfs, str(benign), ro)
    hostile = _hostile(tmp_path, rootfs, source, ro)
    assert cache.template_key(good, HOST) == cache.template_key(hostile, HOST)
    assert cache.verify_run(good, HOST).ok
    full = _full(hostile)
    assert rule in {f.id for f in full.findings}
    try:
        got = cache.verify_run(hostile, HOST)
    except VerificationError as e:
        got = e.report
    assert got.hash == full.hash  # the hit reports exactly what the full check does


def test_the_template_reads_no_abstracted_value(tmp_path: Path, rootfs: Path) -> None:
    """check_template on the concrete policy equals it on the template (findings, layers)."""
    for c in (
        _hostile(tmp_path, rootfs, "/proc"),
        _hostile(tmp_path, rootfs, "/etc", ro=False),
        compiled(tmp_path, rootfs, "n", hostname="other"),
    ):
        concrete = dataclasses.replace(c.profile, policy=c.verify_policy, known_digest=None)
        abstract = dataclasses.replace(
            c.profile, policy=template_policy(c.verify_policy), known_digest=None
        )
        kw = {"seccomp": c.seccomp, "landlock": c.landlock, "apparmor": c.apparmor}
        one, two = (
            core.check_template(concrete, HOST, **kw),
            core.check_template(abstract, HOST, **kw),
        )
        assert one.findings == two.findings and one.layers == two.layers


# What a rule reads that differs between two containers of one image (relocate's
# abstracted fields, the mount trace, the host root): such a rule must be a placement rule.
_PER_RUN = ("rootfs", ".source", "ctx.mounts", "ctx.root", "hostname", "_host_sources", "provided(")


def test_placement_rules_are_those_that_read_paths() -> None:
    """Every rule whose code reads a per-run value is in lint.PLACEMENT (a rule that read
    one but ran on the template would judge a placeholder on every cache hit)."""
    import inspect

    assert set(lint.ids()) >= lint.PLACEMENT
    reading = {
        rid
        for rid, r in lint.RULES.items()
        if any(word in inspect.getsource(r.func) for word in _PER_RUN)
    }
    assert reading == set(lint.PLACEMENT)
    assert (
        tuple(n for n, f in model.Layers.model_fields.items() if f.default == "required")
        == STRICT_REQUIRED
    )
    assert model.Identity.model_fields["hostname"].default == DEFAULT_HOSTNAME


def test_template_of_a_pydantic_policy_is_the_snapshots(tmp_path: Path) -> None:
    """A library caller may hand in the pydantic model: the same template either way."""
    from sandbox import codec
    from sandbox.policy import frozen
    from sandbox.policy.profile import dump, policy_digest

    d = tmp_path / "src"
    d.mkdir()
    raw = dump(load_profile("strict").policy)
    raw["filesystem"]["binds"] = [
        {"source": str(d), "target": "/data", "writable": False, "exec": False, "optional": False}
    ]
    raw["identity"]["hostname"] = "other"
    snap = codec.from_data(frozen.Policy, raw)
    pyd = model.Policy.model_validate(raw)
    one, two = template_policy(snap), template_policy(pyd)
    assert policy_digest(one) == policy_digest(two)
    assert one.filesystem.binds[0].source != str(d) and one.identity.hostname == "sandbox"


def test_a_symlinked_source_is_judged_where_it_resolves(tmp_path: Path, rootfs: Path) -> None:
    """A harmless name for /proc (attack round 2, Medium 5) is still found after a
    benign sibling's verification was kept."""
    benign = tmp_path / "benign"
    benign.mkdir()
    link = tmp_path / "harmless"
    link.symlink_to("/proc")
    assert cache.verify_run(_hostile(tmp_path, rootfs, str(benign)), HOST).ok
    hostile = _hostile(tmp_path, rootfs, str(link))
    full = _full(hostile)
    assert "SBX135" in {f.id for f in full.findings}
    with pytest.raises(VerificationError) as info:
        cache.verify_run(hostile, HOST)
    assert info.value.report.hash == full.hash
