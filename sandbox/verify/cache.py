"""The run path's verification: ``cached_check``, a verified report kept by key.

Supervisor side. A run skips re-verification only on an entry whose key
covers everything the report depends on, and that holds no blocking finding:

- the policy digest (command-line overrides included) and whether it
  extends ``strict``;
- the artifacts the run will load: the sha256 of the seccomp BPF bytes and
  the Landlock artifact's key (so patched bytes are a miss, and are then
  caught by the simulation);
- the library (version and source fingerprint, ``verify.version``);
- the host facts and the ``apparmor_parser`` binary (path, size, mtime).

Entries live in memory (a hit costs a key computation and a dict lookup)
and in ``<state_dir>/verified/<key>.json`` (root: ``/var/lib/sandbox``,
rootless: ``~/.cache/sandbox``), a directory that must be the effective
user's own, mode 0700, not a symlink: a report there lets runs skip their
checks, so nobody else may write one. Each entry carries a sha256 over its
content and the report its own hash; an entry failing any check, or owned by
someone else, or writable by group/others, is ignored (logged) and the full
check runs. Only reports without blocking findings are stored; the directory
keeps the newest :data:`MAX_ENTRIES`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox import cachefile
from sandbox.errors import VerificationError
from sandbox.verify.report import Report

if TYPE_CHECKING:
    from sandbox.compile import CompiledRun
    from sandbox.host import HostFacts
    from sandbox.landlock.rules import LandlockArtifact
    from sandbox.policy.frozen import Policy
    from sandbox.policy.profile import LoadedProfile
    from sandbox.seccomp.artifact import SeccompArtifact

log = logging.getLogger(__name__)

ENTRY_FORMAT = 1
MAX_ENTRIES = 512
SUBDIR = "verified"

_LOCK = threading.Lock()
_MEMORY: dict[str, Report] = {}  # key -> report without blocking findings
# id(policy) -> (policy, digest, extends strict)
_DIGESTS: OrderedDict[int, tuple[Any, str, bool]] = OrderedDict()
_HOSTS: dict[Any, str] = {}
_MEMO_SIZE = 256


def default_dir() -> Path:
    """``<state_dir>/verified``."""
    from sandbox.paths import state_dir

    return state_dir() / SUBDIR


def _policy_facts(profile: Policy | LoadedProfile) -> tuple[str, bool]:
    """(digest, extends strict), memoised per policy object (they are frozen)."""
    with _LOCK:
        hit = _DIGESTS.get(id(profile))
        if hit is not None and hit[0] is profile:
            _DIGESTS.move_to_end(id(profile))
            return hit[1], hit[2]
    from sandbox.policy.profile import LoadedProfile, policy_digest
    from sandbox.verify.inputs import unpack

    policy, _, strict = unpack(profile)
    digest = profile.digest if isinstance(profile, LoadedProfile) else policy_digest(policy)
    with _LOCK:
        _DIGESTS[id(profile)] = (profile, digest, strict)  # holding it keeps id() unique
        while len(_DIGESTS) > _MEMO_SIZE:
            _DIGESTS.popitem(last=False)
    return digest, strict


def _host_id(host: HostFacts) -> str:
    with _LOCK:
        hit = _HOSTS.get(host)
    if hit is None:
        from sandbox.verify.inputs import host_summary

        parser = shutil.which("apparmor_parser")
        tool = None
        if parser is not None:
            st = os.stat(parser)
            tool = [parser, st.st_size, st.st_mtime_ns]
        blob = json.dumps([host_summary(host), tool], sort_keys=True).encode()
        hit = hashlib.sha256(blob).hexdigest()
        with _LOCK:
            _HOSTS[host] = hit
    return hit


def cache_key(
    profile: Policy | LoadedProfile,
    host: HostFacts,
    seccomp: SeccompArtifact | None = None,
    landlock: LandlockArtifact | None = None,
) -> str:
    """The key a verification of these inputs is stored under (64 hex digits)."""
    from sandbox.verify.version import library_id

    digest, strict = _policy_facts(profile)
    body = [
        ENTRY_FORMAT,
        library_id(),
        digest,
        strict,
        [seccomp.arch, hashlib.sha256(seccomp.bpf).hexdigest()] if seccomp is not None else None,
        landlock.key if landlock is not None else None,
        _host_id(host),
    ]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def _private_dir(path: Path, create: bool) -> bool:
    """The directory exists (made 0700 if ``create``), is ours and private; else log why not."""
    problem = cachefile.private_dir(path, create=create)
    if problem is not None and (create or path.exists()):
        log.warning("verify cache: %s; verifying every run", problem)
    return problem is None


def _read(directory: Path, key: str) -> Report | None:
    body = cachefile.read(directory / f"{key}.json", key, ENTRY_FORMAT)
    if body is None:
        return None
    try:
        report = Report.from_dict(body["report"])
    except (ValueError, KeyError, TypeError) as e:
        log.warning("verify cache: entry for %s rejected (%s); verifying again", key, e)
        return None
    if not report.ok:
        log.warning("verify cache: entry for %s holds blocking findings; verifying again", key)
        return None
    return report


def _write(directory: Path, key: str, report: Report) -> None:
    try:
        cachefile.write(directory / f"{key}.json", key, ENTRY_FORMAT, {"report": report.to_dict()})
    except OSError as e:
        log.warning("verify cache: cannot write to %s: %s", directory, e.strerror)
        return
    cachefile.prune(directory, MAX_ENTRIES)


def _here(report: Report, profile: Policy | LoadedProfile) -> Report:
    """The cached report with this caller's ``source`` (not part of the key or the hash)."""
    source = getattr(profile, "source", "<policy>")
    return report if report.source == source else dataclasses.replace(report, source=source)


def verify(
    profile: Policy | LoadedProfile,
    host: HostFacts,
    *,
    seccomp: SeccompArtifact | None = None,
    landlock: LandlockArtifact | None = None,
    cache_dir: Path | None = None,
    no_cache: bool = False,
) -> tuple[Report, bool]:
    """The report for these inputs and whether it came from the cache (never raises on findings).

    ``no_cache`` runs the full check (and still stores a clean result).

    Raises:
        PolicyError: when the policy's seccomp section does not resolve.
    """
    key = cache_key(profile, host, seccomp, landlock)
    if not no_cache:
        with _LOCK:
            hit = _MEMORY.get(key)
        if hit is not None:
            return _here(hit, profile), True
    directory = cache_dir if cache_dir is not None else default_dir()
    if not no_cache and _private_dir(directory, create=False):
        report = _read(directory, key)
        if report is not None:
            with _LOCK:
                _MEMORY[key] = report
            return _here(report, profile), True
    from sandbox.verify.core import check

    report = check(profile, host, seccomp=seccomp, landlock=landlock)
    if report.ok:
        with _LOCK:
            _MEMORY[key] = report
        if _private_dir(directory, create=True):
            _write(directory, key, report)
    return report, False


def cached_check(
    profile: Policy | LoadedProfile,
    host: HostFacts,
    *,
    seccomp: SeccompArtifact | None = None,
    landlock: LandlockArtifact | None = None,
    cache_dir: Path | None = None,
    no_cache: bool = False,
) -> Report:
    """Verify before a run; a previously verified identical run costs a lookup.

    Pass the artifacts the run will load (``seccomp``: the filter for the
    host's ABI; ``landlock``), so the key covers those exact bytes. Put
    ``report.hash`` in the run record.

    Args:
        profile: the policy, or the loaded profile.
        host: the host facts the run is planned for.
        seccomp: the filter the child will load.
        landlock: the Landlock artifact the child will apply.
        cache_dir: the cache directory (default ``<state_dir>/verified``).
        no_cache: ignore cached entries and run the full check.

    Returns:
        The report (no blocking finding; warnings may be present).

    Raises:
        VerificationError: with ``.report``, when a finding blocks the run.
        PolicyError: when the policy's seccomp section does not resolve.
    """
    report, _ = verify(
        profile, host, seccomp=seccomp, landlock=landlock, cache_dir=cache_dir, no_cache=no_cache
    )
    _refuse_blocking(report)
    return report


def run_key(compiled: CompiledRun, host: HostFacts) -> str:
    """The key of a run's verification: exactly the artifacts it will load, and who checked.

    The compiled run's artifact digest covers the policy digest, the BPF
    bytes, the Landlock rules, the AppArmor text, the mount plan, the kept
    capabilities, the namespaces and the rlimits.
    """
    from sandbox.verify.version import library_id

    _, strict = _policy_facts(compiled.profile)
    body = [ENTRY_FORMAT, "run", library_id(), compiled.artifacts_digest(), strict, _host_id(host)]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def verify_run(compiled: CompiledRun, host: HostFacts, *, cache_dir: Path | None = None) -> Report:
    """The verify stage of a run: the compiled artifacts, checked once per digest.

    A hit costs a key computation and a lookup (no verify machinery is
    imported); a miss runs the full check on exactly the artifacts the run
    will load, with the policy as compiled.

    Raises:
        VerificationError: with ``.report``, when a finding blocks the run.
    """
    key = run_key(compiled, host)
    with _LOCK:
        hit = _MEMORY.get(key)
    if hit is not None:
        return _here(hit, compiled.profile)
    directory = cache_dir if cache_dir is not None else default_dir()
    report = _read(directory, key) if _private_dir(directory, create=False) else None
    if report is None:
        from sandbox.verify.core import check

        target = compiled.profile
        if compiled.verify_policy is not target.policy:
            target = dataclasses.replace(target, policy=compiled.verify_policy, known_digest=None)
        report = check(
            target,
            host,
            seccomp=compiled.seccomp,
            landlock=compiled.landlock,
            apparmor=compiled.apparmor,
            mounts=compiled.plan.mounts,
        )
        _refuse_blocking(report)
        if _private_dir(directory, create=True):
            _write(directory, key, report)
    with _LOCK:
        _MEMORY[key] = report
    return _here(report, compiled.profile)


def _refuse_blocking(report: Report) -> None:
    if not report.ok:
        shown = "; ".join(f"{f.id} {f.message} (fix: {f.fix})" for f in report.blocking[:3])
        more = len(report.blocking) - 3
        raise VerificationError(
            f"profile {report.profile!r} failed verification: {shown}"
            + (f"; and {more} more (sandbox verify shows all)" if more > 0 else ""),
            report=report,
        )


def clear_memory() -> None:
    """Forget in-memory entries (tests; long-running servers after an upgrade)."""
    with _LOCK:
        _MEMORY.clear()
        _DIGESTS.clear()
        _HOSTS.clear()
        cachefile._TRUSTED.clear()
