"""The run path as one pipeline: compile -> verify -> acquire -> launch -> supervise -> release.

Real kernel, real caches (root): the compile stage holds nothing, the verify
stage checks exactly the compiled bytes (the AppArmor text included, rendered
for the real program), a refused verification takes no resource, and the
supervisor calls each stage once, in order.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from sandbox import cgroups
from sandbox.apparmor import lifetime
from sandbox.apparmor.host import AppArmorHost
from sandbox.apparmor.parser import probe_parser
from sandbox.compile import Artifacts, Request, compile_run
from sandbox.errors import ProgramNotFound, VerificationError
from sandbox.host import probe
from sandbox.policy.load import load_profile
from sandbox.runner import state
from sandbox.runner import supervisor as sup_mod
from sandbox.runner.client import ForkServerClient
from sandbox.runner.supervisor import RunRequest, Supervisor
from sandbox.verify import cache

pytestmark = pytest.mark.requires("root")


def test_compile_takes_no_resource_and_leaves_the_run_resources_open(monkeypatch):
    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("the compile stage took a run resource")

    for module, name in (
        (state, "acquire_run_lock"),
        (state, "id_slot"),
        (cgroups, "create"),
        (lifetime, "hold"),
    ):
        monkeypatch.setattr(module, name, forbidden)
    host = probe()
    compiled = compile_run(load_profile("strict"), host, Request(("/bin/true",)), Artifacts(host))
    plan = compiled.plan
    assert plan.run_id == "" and plan.host_uid == -1 and not plan.join_cgroup
    assert compiled.seccomp is not None and plan.seccomp is not None
    assert plan.seccomp.bpf == compiled.seccomp.bpf  # the verified bytes are the loaded ones
    assert plan.landlock == compiled.landlock and plan.exec_path == "/bin/true"  # in place
    assert compiled.cgroup is not None and compiled.cgroup.limits.memory == 256 << 20


def test_the_verified_apparmor_text_is_the_one_rendered_for_the_program(tmp_path: Path):
    """On an AppArmor host the run verifies the very text it loads (real parser, offline)."""
    host = dataclasses.replace(probe(), apparmor=True)
    arts = Artifacts(host)
    arts._aa_host = AppArmorHost(
        module_enabled=True,
        lsm_active=True,
        securityfs=True,
        can_load=True,
        parser=probe_parser(),
        parser_error=None,
        restrict_unprivileged_userns=None,
        restrict_unprivileged_unconfined=None,
        self_label=None,
        notes=(),
    )
    prog = tmp_path / "judge-me"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    compiled = compile_run(load_profile("strict"), host, Request((str(prog),)), arts)
    art = compiled.apparmor
    assert art is not None and compiled.plan.apparmor_profile == art.name
    # The interpreter as AppArmor sees its exec: every symlink resolved in the container.
    assert '"/box/judge-me" mrix,' in art.text and '"/usr/bin/dash" mrix,' in art.text
    cache.clear_memory()
    report = cache.verify_run(compiled, host, cache_dir=tmp_path / "verified")
    (aa,) = [layer for layer in report.layers if layer.layer == "apparmor"]
    assert aa.state == "ok" and aa.key == art.key  # exactly this text went through the parser
    other = compile_run(load_profile("strict"), host, Request(("/bin/true",)), arts)
    assert other.apparmor is not None and other.apparmor.key != art.key
    assert cache.run_key(other, host) != cache.run_key(compiled, host)


def test_a_refused_verification_takes_no_resource(tmp_path: Path, monkeypatch):
    prof = tmp_path / "admin.toml"
    prof.write_text('extends = "strict"\n[capabilities]\nkeep = ["CAP_SYS_ADMIN"]\n')
    host = probe()
    acquired: list[object] = []
    client = ForkServerClient(mode="fork")
    sup = Supervisor(host, client)
    monkeypatch.setattr(sup.acquirer, "acquire", lambda *a, **k: acquired.append(a))
    try:
        with pytest.raises(VerificationError, match="SBX101"):
            sup.run(RunRequest(["/bin/true"], load_profile(str(prof))))
    finally:
        client.close()
    assert acquired == []


def test_the_supervisor_calls_each_stage_once_in_order(monkeypatch):
    calls: list[str] = []

    def spy(module: object, name: str, label: str) -> None:
        real = getattr(module, name)

        def wrapped(*args: object, **kwargs: object) -> object:
            calls.append(label)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)

    spy(sup_mod, "compile_run", "compile")
    spy(cache, "verify_run", "verify")
    spy(sup_mod, "launch", "launch")
    spy(sup_mod, "supervise", "supervise")
    spy(sup_mod, "release", "release")
    client = ForkServerClient(mode="fork")
    try:
        sup = Supervisor(probe(), client)
        spy(sup.acquirer, "acquire", "acquire")
        r = sup.run(RunRequest(["/bin/sh", "-c", "exit 3"], load_profile("strict")))
    finally:
        client.close()
    assert r.exit_code == 3 and r.verification.startswith("sha256:")
    assert calls == ["compile", "verify", "acquire", "launch", "supervise", "release"]


def test_a_repeated_request_reuses_its_compiled_run_until_the_program_changes(tmp_path: Path):
    host = probe()
    arts = Artifacts(host)
    prog = tmp_path / "a.out"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    profile = load_profile("strict")
    req = Request((str(prog),))
    first = compile_run(profile, host, req, arts)
    assert compile_run(profile, host, req, arts) is first  # a judge's next run: no work
    assert compile_run(profile, host, Request((str(prog), "x")), arts) is not first
    prog.write_text("#!/bin/sh\nexit 1\n")  # a new submission under the same name
    os.utime(prog, ns=(1, 1))
    again = compile_run(profile, host, req, arts)
    assert again is not first and again.artifacts_digest() == first.artifacts_digest()
    prog.unlink()
    with pytest.raises(ProgramNotFound):
        compile_run(profile, host, req, arts)
