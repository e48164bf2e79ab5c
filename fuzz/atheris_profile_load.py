"""Coverage-guided fuzzing (atheris, libFuzzer) of profile loading and artifact generation.

    fuzz/run_atheris.sh 60        # installs atheris into .venv if missing, seeds, runs 60 s

Each input is the text of a profile (``extends`` may name the shipped
profiles). It is loaded with ``load_profile``; a profile that loads is then
compiled for every layer: seccomp for each x86 ABI, Landlock at every ABI,
the AppArmor text, the mount plan with its traced flags, the cgroup limits,
and lint. The documented errors (PolicyError, ArtifactError) are expected;
any other exception, a hang or a crash is a finding libFuzzer saves under
``.fuzz-corpus/crashes/``.

Not collected by pytest (the name does not start with ``test_``); the
hypothesis properties in ``test_policy_props.py`` cover the same invariants
with a fixed budget in CI.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["sandbox"]):
    from sandbox.apparmor.parser import ParserFeatures
    from sandbox.apparmor.render import prepare as render
    from sandbox.cgroups import CgroupLimits
    from sandbox.errors import ArtifactError, PolicyError
    from sandbox.fs.ops import plan_mounts
    from sandbox.landlock.rules import prepare as landlock_prepare
    from sandbox.policy.load import load_profile
    from sandbox.seccomp.build import prepare as seccomp_prepare
    from sandbox.seccomp.groups import resolve
    from sandbox.seccomp.tables import ARCHES
    from sandbox.verify import lint
    from sandbox.verify.mountflags import trace

AA3 = ParserFeatures(version=(3, 0, 8), abi="3.0", rules=frozenset())
# run_atheris.sh owns the scratch directory: libFuzzer ends with exit(), which
# skips atexit; run by hand, the harness makes (and tries to remove) its own.
_DIR = os.environ.get("SBX_FUZZ_SCRATCH", "")
if not _DIR:
    _DIR = tempfile.mkdtemp(prefix="sbx-atheris-")
    atexit.register(shutil.rmtree, _DIR, True)
_PATH = os.path.join(_DIR, "fuzzed.toml")


def generate(policy) -> None:  # type: ignore[no-untyped-def]
    """Every layer's artifact, as a run would build it (documented errors only)."""
    spec = resolve(policy.seccomp)
    for arch in ARCHES:
        with contextlib.suppress(ArtifactError):
            seccomp_prepare(policy.seccomp, arch)
    for abi in range(8):
        landlock_prepare(policy.filesystem, abi)
    text = None
    with contextlib.suppress(ArtifactError):
        text = render(policy, program="/box/prog", interpreter=None, parser_features=AA3).text
    mounts = None
    with contextlib.suppress(PolicyError):
        mounts = trace(plan_mounts(policy.filesystem, "/", None))
    lim = policy.limits
    CgroupLimits(memory=lim.memory, pids=lim.processes, cpu_quota=lim.cpu_quota, cpuset=lim.cpuset)
    lint.run(lint.context(policy, spec, apparmor_text=text, mounts=mounts))


def test_one_input(data: bytes) -> None:
    """libFuzzer's entry point: one profile text."""
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        profile = load_profile(_PATH)
        generate(profile.policy)
    except (PolicyError, ArtifactError):
        return


def main() -> None:
    """Run libFuzzer with the command line (see ``fuzz/run_atheris.sh``)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
