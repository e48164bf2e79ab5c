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

import contextlib
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
    from sandbox.fs.ops import MountPlan
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


def _template(compiled: CompiledRun) -> tuple[LoadedProfile, MountPlan]:
    """The profile and mount plan the kept part of a run's verification is about: the policy
    as compiled, its per-run host paths and hostname abstracted (``verify.relocate``)."""
    from sandbox.verify.relocate import template_mounts, template_policy

    profile = compiled.profile
    policy = template_policy(compiled.verify_policy)
    profile = dataclasses.replace(profile, policy=policy, known_digest=None)
    return profile, template_mounts(compiled.plan.mounts)


def run_key(compiled: CompiledRun, host: HostFacts) -> str:
    """The key of a run's whole verification: exactly the artifacts it will load, and who
    checked (the compiled run's artifact digest covers the policy digest, host paths
    included, the BPF bytes, the Landlock rules, the AppArmor text, the mount plan, the
    kept capabilities, the namespaces and the rlimits)."""
    from sandbox.verify.version import library_id

    _, strict = _policy_facts(compiled.profile)
    body = [ENTRY_FORMAT, "run", library_id(), compiled.artifacts_digest(), strict, _host_id(host)]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def template_key(compiled: CompiledRun, host: HostFacts) -> str:
    """The key of a run's template verification: exactly the artifacts it will load, the policy
    they were compiled from with its per-run host paths abstracted, and who checked.

    Covers the seccomp BPF bytes, the Landlock rules, the AppArmor text, the
    mount plan (host paths abstracted), the kept capabilities, the namespaces
    and the rlimits: two containers of one image and config share it, a
    different byte anywhere in what is loaded does not.
    """
    from sandbox import codec
    from sandbox.verify.version import library_id

    _, strict = _policy_facts(compiled.profile)
    profile, mounts = _template(compiled)
    sc, aa = compiled.seccomp, compiled.apparmor
    parts = {
        "policy": profile.digest,
        "seccomp": hashlib.sha256(sc.bpf).hexdigest() if sc is not None else None,
        "seccomp_arch": sc.arch if sc is not None else None,
        "landlock": compiled.landlock.key if compiled.landlock is not None else None,
        "apparmor": hashlib.sha256(aa.text.encode()).hexdigest() if aa is not None else None,
        "mounts": codec.dumps(mounts),
        "caps": compiled.plan.caps_keep,
        "ns": compiled.plan.unshare_flags,
        "rlimits": codec.dumps(compiled.plan.rlimits),
    }
    body = [ENTRY_FORMAT, "run-template", library_id(), codec.dumps(parts), strict, _host_id(host)]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def verify_run(compiled: CompiledRun, host: HostFacts, *, cache_dir: Path | None = None) -> Report:
    """The verify stage of a run, kept at two levels.

    1. The whole report by :func:`run_key` (the same run again: a judge's,
       the CLI's): a hit costs a key computation and a lookup, and imports
       no verify machinery.
    2. Else the template's report by :func:`template_key` (another container
       of the same image and config: only its host paths and hostname
       differ), joined with the placement checks (the mount trace and the
       rules that read host paths: ``verify.placement``) run on this run's
       own values. A miss runs every other check
       (``verify.core.check_template``) on exactly the artifacts the run will
       load, with the policy as compiled and its host paths abstracted.

    Raises:
        VerificationError: with ``.report``, when a finding blocks the run.
    """
    memo: tuple[HostFacts, str] | None = compiled._memo.get("run_key")
    if memo is not None and memo[0] is host:  # a compiled run's key for this host, once
        whole = memo[1]
    else:
        whole = run_key(compiled, host)
        compiled._memo["run_key"] = (host, whole)
    with _LOCK:
        hit = _MEMORY.get(whole)
    if hit is not None:  # the run's own path: no cache directory looked at
        return _here(hit, compiled.profile)
    directory = cache_dir if cache_dir is not None else default_dir()
    private = _private_dir(directory, create=False)
    if private:
        hit = _read(directory, whole)
    if hit is not None:
        with _LOCK:
            _MEMORY[whole] = hit
        return _here(hit, compiled.profile)
    report = _verify_template(compiled, host, directory, private)
    with _LOCK:
        _MEMORY[whole] = report
    if _private_dir(directory, create=True):
        _write(directory, whole, report)
    return report


def _verify_template(
    compiled: CompiledRun, host: HostFacts, directory: Path, private: bool
) -> Report:
    from sandbox.verify.placement import check_placement, join

    key = template_key(compiled, host)
    with _LOCK:
        template = _MEMORY.get(key)
    if template is None and private:
        template = _read(directory, key)
        if template is not None:  # in use: the newest, so pruning (oldest first) keeps it
            with contextlib.suppress(OSError):
                os.utime(directory / f"{key}.json")
    if template is None:
        from sandbox.verify.core import check_template

        profile, _ = _template(compiled)
        template = check_template(
            profile,
            host,
            seccomp=compiled.seccomp,
            landlock=compiled.landlock,
            apparmor=compiled.apparmor,
        )
        _refuse_blocking(template)
        if _private_dir(directory, create=True):
            _write(directory, key, template)
    with _LOCK:
        _MEMORY[key] = template
    _, strict = _policy_facts(compiled.profile)
    placement = check_placement(compiled.verify_policy, compiled.plan.mounts, strict=strict)
    source = getattr(compiled.profile, "source", "<policy>")
    report = join(template, placement, compiled.verify_policy, source)
    _refuse_blocking(report)
    return report


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
