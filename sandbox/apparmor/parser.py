"""``apparmor_parser`` and the kernel's policy interface: probe, compile check, load, remove.

Supervisor side only. Probing and the compile check (``-Q``, skip kernel
load) need no privilege and work on hosts without AppArmor, such as this
project's build machines. Loading, replacing and removing profiles need
CAP_MAC_ADMIN in the initial user namespace (root).

Loading uses ``apparmor_parser -r -K``: replace (so a second loader of the same
text is harmless) and no cache, because each generated profile is compiled
once per boot and the cache directory may be read-only. Removal writes the
name to securityfs ``.remove``, which needs no parser process.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SetupError

log = logging.getLogger(__name__)

PARSER = "apparmor_parser"
SECURITYFS = Path("/sys/kernel/security/apparmor")
ABI_DIR = Path("/etc/apparmor.d/abi")
# Newest first: the profile declares the newest policy ABI this parser ships.
_KNOWN_ABIS = ("4.0", "3.0")
# Rules whose support we probe by compiling a one-rule profile.
PROBED_RULES = ("userns", "io_uring")
_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ParserFeatures:
    """What the installed parser can compile (probed once per process)."""

    version: tuple[int, ...]
    abi: str
    rules: frozenset[str]
    parser: str = PARSER

    @property
    def version_text(self) -> str:
        """``3.0.8`` style, for messages."""
        return ".".join(map(str, self.version)) or "unknown"

    @property
    def abi_file(self) -> Path:
        """The ABI features file the profiles declare (``abi <abi/X>,``)."""
        return ABI_DIR / self.abi


@dataclass(frozen=True, slots=True)
class CompileResult:
    """Outcome of ``apparmor_parser -Q``: ``message`` is the parser's stderr."""

    ok: bool
    returncode: int
    message: str
    seconds: float


def _run(argv: list[str], text: str | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, input=text, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except FileNotFoundError as e:
        raise SetupError(
            "apparmor", f"{argv[0]} not found: install Debian's 'apparmor' package"
        ) from e
    except subprocess.TimeoutExpired as e:
        raise SetupError("apparmor", f"{' '.join(argv)} took more than {_TIMEOUT:.0f} s") from e


def _clean(stderr: str) -> str:
    # On a kernel without AppArmor the parser always says this; it is noise.
    lines = [ln for ln in stderr.splitlines() if "Cache read/write disabled" not in ln]
    return "\n".join(lines).strip()


def offline_features_args(abi_file: Path) -> list[str]:
    """Arguments that make the parser compile against an ABI file, not the kernel.

    Used where the kernel has no AppArmor (nothing to ask it about), so the
    compile check means "valid for this ABI" on every such host.
    """
    return ["--kernel-features", str(abi_file)] if abi_file.is_file() else []


def compile_check(
    text: str, *, parser: str = PARSER, features_file: Path | None = None
) -> CompileResult:
    """Compile a profile without loading it (``apparmor_parser -Q -K``).

    Args:
        text: the whole profile text.
        parser: the parser executable.
        features_file: compile against this ABI file instead of the running
            kernel's features (for hosts without AppArmor).

    Raises:
        SetupError: when the parser cannot be run at all.
    """
    argv = [parser, "-Q", "-K", "-q"]
    if features_file is not None:
        argv += offline_features_args(features_file)
    t0 = time.monotonic()
    r = _run(argv, text)
    seconds = time.monotonic() - t0
    message = _clean(r.stderr)
    log.debug("apparmor_parser -Q: rc=%d in %.3f s", r.returncode, seconds)
    return CompileResult(
        ok=r.returncode == 0, returncode=r.returncode, message=message, seconds=seconds
    )


def _version(parser: str) -> tuple[int, ...]:
    r = _run([parser, "--version"], None)
    m = re.search(r"version\s+(\d+(?:\.\d+)*)", r.stdout + r.stderr)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


@functools.cache
def probe_parser(parser: str = PARSER, abi_dir: Path = ABI_DIR) -> ParserFeatures:
    """Find the parser's version, newest shipped ABI and which optional rules it knows.

    Cached: the answer cannot change while the process runs (a package
    upgrade meanwhile is caught by the compile check).

    Raises:
        SetupError: when the parser cannot be run.
    """
    version = _version(parser)
    abi = next((a for a in _KNOWN_ABIS if (abi_dir / a).is_file()), "3.0")
    rules = set()
    for rule in PROBED_RULES:
        probe = f"abi <abi/{abi}>,\nprofile sbx_probe {{\n  deny {rule},\n}}\n"
        if compile_check(probe, parser=parser, features_file=abi_dir / abi).ok:
            rules.add(rule)
    features = ParserFeatures(version=version, abi=abi, rules=frozenset(rules), parser=parser)
    log.debug(
        "apparmor_parser %s: abi %s, optional rules %s", features.version_text, abi, sorted(rules)
    )
    return features


def loaded_profiles(securityfs: Path = SECURITYFS) -> dict[str, str]:
    """Profiles in the kernel, name -> mode (``enforce``, ``complain``...).

    Raises:
        SetupError: when securityfs cannot be read (no AppArmor, no root).
    """
    try:
        listing = (securityfs / "profiles").read_text()
    except OSError as e:
        raise SetupError("apparmor", f"read {securityfs / 'profiles'}: {e.strerror}") from e
    out = {}
    for line in listing.splitlines():
        name, _, mode = line.rpartition(" (")
        out[name] = mode.rstrip(")")
    return out


def load(text: str, *, parser: str = PARSER) -> float:
    """Load or replace a profile in the kernel (``apparmor_parser -r -K``).

    Returns the seconds it took. Needs CAP_MAC_ADMIN.

    Raises:
        SetupError: with the parser's message when it refuses.
    """
    t0 = time.monotonic()
    r = _run([parser, "-r", "-K", "-q"], text)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        raise SetupError(
            "apparmor", f"apparmor_parser -r failed (rc={r.returncode}): {_clean(r.stderr)}"
        )
    log.debug("apparmor_parser -r: loaded in %.3f s", seconds)
    return seconds


def remove(name: str, *, securityfs: Path = SECURITYFS) -> bool:
    """Remove a profile from the kernel; False when it was not loaded.

    Its tasks, if any are left, become unconfined (verified in the guest), so
    callers go through :mod:`sandbox.apparmor.lifetime`. Needs CAP_MAC_ADMIN.

    Raises:
        SetupError: when the kernel refuses for another reason.
    """
    path = securityfs / ".remove"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise SetupError("apparmor", f"open({str(path)!r}, O_WRONLY): {e.strerror}") from e
    try:
        os.write(fd, name.encode())
    except FileNotFoundError:
        return False  # ENOENT: no profile of that name
    except OSError as e:
        raise SetupError("apparmor", f"write({str(path)!r}, {name!r}): {e.strerror}") from e
    finally:
        os.close(fd)
    log.debug("apparmor: removed profile %s", name)
    return True


class KernelProfiles:
    """The real profile store used by :mod:`sandbox.apparmor.lifetime`."""

    def __init__(self, *, parser: str = PARSER, securityfs: Path = SECURITYFS) -> None:
        """Use this parser and this securityfs mount."""
        self.parser = parser
        self.securityfs = securityfs

    def is_loaded(self, name: str) -> bool:
        """Whether the kernel has a profile of this name."""
        return name in loaded_profiles(self.securityfs)

    def names(self) -> set[str]:
        """All loaded profile names."""
        return set(loaded_profiles(self.securityfs))

    def load(self, text: str) -> None:
        """Load or replace."""
        load(text, parser=self.parser)

    def remove(self, name: str) -> None:
        """Remove; a profile that is already gone is fine."""
        remove(name, securityfs=self.securityfs)
