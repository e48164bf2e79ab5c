"""Host probe: is AppArmor there, can we load profiles, and is Ubuntu's userns restriction on?

Supervisor side (and ``sandbox doctor``). Reads sysfs, securityfs and procfs
through a :class:`HostFiles` reader, so tests point it at a tmpdir laid out
like the real files. Needs no capability, except that securityfs is only
readable by root: without root, ``securityfs`` reads as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.apparmor.parser import ParserFeatures, probe_parser
from sandbox.errors import SetupError

CAP_MAC_ADMIN = 33

USERNS_FIX = (
    "Ubuntu (23.10+) sets kernel.apparmor_restrict_unprivileged_userns=1: an unconfined "
    "task without CAP_SYS_ADMIN that creates a user namespace is moved into the "
    "'unprivileged_userns' profile and loses every capability in it, so a rootless launcher "
    "cannot mount or pivot_root (a root supervisor's launcher is not affected). Fix: install "
    "profiles/apparmor/sandbox-launcher (an AppArmor 4 profile that grants 'userns' to the "
    "dedicated launcher executable only, never to python3) as "
    "/etc/apparmor.d/sandbox-launcher, load it with "
    "'apparmor_parser -r /etc/apparmor.d/sandbox-launcher' and start the launcher through "
    "that executable; or give the protection up for the whole host with "
    "'sysctl kernel.apparmor_restrict_unprivileged_userns=0'."
)
UNCONFINED_NOTE = (
    "kernel.apparmor_restrict_unprivileged_unconfined=1 restricts profile changes by "
    "unconfined tasks without CAP_MAC_ADMIN. The launcher requests change-on-exec from "
    "inside its user namespace; not verified on such a host (this project's guest kernel "
    "has no such sysctl): check that runs report the profile in attr/current there."
)
CONFINED_NOTE = (
    "The supervisor runs under an AppArmor profile. The launcher inherits it, and with "
    "no_new_privs set the change-on-exec to the generated profile is refused unless the "
    "new profile is a subset of it. Run the supervisor unconfined (the default for root "
    "services without an attached profile)."
)


class HostFiles:
    """Reads host files under ``root`` (``/`` for the real host, a tmpdir in tests)."""

    def __init__(self, root: Path = Path("/")) -> None:
        """Read files below ``root``."""
        self.root = root

    def read(self, path: str) -> str | None:
        """The file's text, or None when it is missing or unreadable."""
        try:
            return (self.root / path.lstrip("/")).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def exists(self, path: str) -> bool:
        """Whether the path exists."""
        return (self.root / path.lstrip("/")).exists()


@dataclass(frozen=True, slots=True)
class AppArmorHost:
    """What the host offers for the AppArmor layer.

    ``enabled`` is the one to act on: the module is on, AppArmor is in the
    active LSM list and its securityfs is mounted. ``can_load`` adds
    CAP_MAC_ADMIN. ``restrict_unprivileged_userns`` is None where the sysctl
    does not exist (every non-Ubuntu kernel).
    """

    module_enabled: bool
    lsm_active: bool
    securityfs: bool
    can_load: bool
    parser: ParserFeatures | None
    parser_error: str | None
    restrict_unprivileged_userns: bool | None
    restrict_unprivileged_unconfined: bool | None
    self_label: str | None
    notes: tuple[str, ...]

    @property
    def enabled(self) -> bool:
        """AppArmor can confine tasks on this host."""
        return self.module_enabled and self.lsm_active and self.securityfs

    @property
    def reason(self) -> str:
        """One line saying why the layer can or cannot be enforced."""
        if not self.module_enabled:
            return "the kernel has no AppArmor (/sys/module/apparmor/parameters/enabled != Y)"
        if not self.lsm_active:
            return "AppArmor is built in but not an active LSM (see /sys/kernel/security/lsm)"
        if not self.securityfs:
            return "securityfs apparmor/ is not readable (not mounted, or not root)"
        if self.parser is None:
            return f"apparmor_parser is missing: {self.parser_error}"
        if not self.can_load:
            return "loading profiles needs CAP_MAC_ADMIN (run the supervisor as root)"
        if self.self_label not in (None, "unconfined"):
            return f"the supervisor is itself confined ({self.self_label}): run it unconfined"
        return f"AppArmor on, apparmor_parser {self.parser.version_text}, abi {self.parser.abi}"


def _sysctl_flag(files: HostFiles, name: str) -> bool | None:
    text = files.read(f"/proc/sys/kernel/{name}")
    if text is None or not text.strip().isdigit():
        return None
    return int(text) != 0


def _has_cap(files: HostFiles, cap: int) -> bool:
    status = files.read("/proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def detect(files: HostFiles | None = None, *, parser: str = "apparmor_parser") -> AppArmorHost:
    """Probe the host. Never raises: what is missing is reported in the result."""
    files = files or HostFiles()
    lsms = (files.read("/sys/kernel/security/lsm") or "").strip().split(",")
    try:
        features: ParserFeatures | None = probe_parser(parser)
        parser_error = None
    except SetupError as e:
        features, parser_error = None, str(e)
    userns = _sysctl_flag(files, "apparmor_restrict_unprivileged_userns")
    unconfined = _sysctl_flag(files, "apparmor_restrict_unprivileged_unconfined")
    label = files.read("/proc/self/attr/apparmor/current") or files.read("/proc/self/attr/current")
    self_label = label.strip().removesuffix(" (enforce)") if label else None
    notes = []
    if self_label not in (None, "unconfined"):
        notes.append(CONFINED_NOTE)
    if userns:
        notes.append(USERNS_FIX)
    if unconfined:
        notes.append(UNCONFINED_NOTE)
    return AppArmorHost(
        module_enabled=(files.read("/sys/module/apparmor/parameters/enabled") or "").strip() == "Y",
        lsm_active="apparmor" in lsms,
        securityfs=files.read("/sys/kernel/security/apparmor/profiles") is not None,
        can_load=_has_cap(files, CAP_MAC_ADMIN),
        parser=features,
        parser_error=parser_error,
        restrict_unprivileged_userns=userns,
        restrict_unprivileged_unconfined=unconfined,
        self_label=self_label,
        notes=tuple(notes),
    )
