"""Which layers a run will enforce, and the fail-closed check (pure).

Each layer ends up ``full``, ``partial`` or ``off`` with a reason. A layer the
profile marks ``required`` that is not ``full`` refuses the run
(UnsupportedError, exit 125) naming the layer and why; ``degradable`` layers
run degraded and say so in the record; ``disabled`` layers are off. Layers
switched off by the test-only ablation hook are recorded as such and never
refuse. ``file_mediation`` needs Landlock at ABI >= 2 or AppArmor in force.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sandbox.errors import UnsupportedError
from sandbox.host import HIDE_ENV, HostFacts
from sandbox.layers import LAYERS, Enforcement

if TYPE_CHECKING:
    from sandbox.policy.frozen import Policy

log = logging.getLogger(__name__)
ABLATED = "ablated by the test hook (--test-ablate)"


def static_states(
    policy: Policy, host: HostFacts, ablate: frozenset[str]
) -> dict[str, Enforcement]:
    """States known before any resource exists (cgroups and Landlock detail come later)."""
    ns = policy.namespaces
    shared = [n for n in ("pid", "mount", "net", "ipc", "uts", "cgroup") if not getattr(ns, n)]
    states: dict[str, Enforcement] = {}
    if not host.is_root and host.userns_max == 0:
        states["namespaces"] = Enforcement("off", "user namespaces are disabled on this host")
    elif shared:
        states["namespaces"] = Enforcement("partial", f"shared with the host: {', '.join(shared)}")
    else:
        extra = "" if host.time_ns or not ns.time else "; no time namespace on this kernel"
        states["namespaces"] = Enforcement(
            "full",
            "user, pid, mount, net, ipc, uts, cgroup"
            + (", time" if host.time_ns and ns.time else "")
            + extra,
        )
    if not host.overlay:
        states["overlay"] = Enforcement("off", "overlayfs is not available")
    elif not host.is_root and host.kernel < (6, 6):
        states["overlay"] = Enforcement(
            "off",
            "rootless, the overlay is made in a user namespace (userxattr), and its "
            f"tmpfs upper layer needs user xattrs (Linux 6.6; this is {host.kernel[0]}."
            f"{host.kernel[1]})",
        )
    elif not host.is_root:
        states["overlay"] = Enforcement(
            "full",
            "rootless: read-only lower layers, per-run tmpfs upper, made in the run's "
            "user namespace (userxattr)",
        )
    else:
        states["overlay"] = Enforcement("full", "read-only lower layers, per-run tmpfs upper")
    states["capabilities"] = Enforcement(
        "full",
        "bounding/permitted/effective/ambient: " + (", ".join(policy.capabilities.keep) or "empty"),
    )
    states["no_new_privs"] = Enforcement("full")
    states["landlock"] = (
        Enforcement("off", "kernel has no Landlock")
        if host.landlock_abi == 0
        else Enforcement("full", f"ABI {host.landlock_abi}")
    )
    states["apparmor"] = (
        Enforcement("full") if host.apparmor else Enforcement("off", "kernel has no AppArmor")
    )
    states["seccomp"] = (
        Enforcement("full")
        if host.seccomp
        else Enforcement("off", "kernel has no seccomp filter support")
    )
    states["cgroups"] = Enforcement("off", "not set up yet")  # decided when the leaf exists
    for layer in LAYERS:
        if getattr(policy.layers, layer) == "disabled":
            states[layer] = Enforcement("off", "disabled by the profile")
        if layer in ablate:
            states[layer] = Enforcement("off", ABLATED)
    for layer in host.hidden:
        if layer in states and layer not in ablate:
            states[layer] = Enforcement("off", f"hidden by the test hook ({HIDE_ENV})")
    return states


def check(
    policy: Policy,
    states: Mapping[str, Enforcement],
    ablate: frozenset[str],
    host: HostFacts,
    *,
    warn: bool = True,
    pending: frozenset[str] = frozenset(),
) -> None:
    """Refuse (UnsupportedError) when a required layer is not fully enforced.

    ``pending`` layers are not decided yet (the cgroup leaf is made later).

    Raises:
        UnsupportedError: naming the first layer that cannot be enforced and why.
    """
    degraded = []
    for layer in LAYERS:
        mode = getattr(policy.layers, layer)
        st = states.get(layer, Enforcement("off", "unknown layer state"))
        if layer in ablate or mode == "disabled" or layer in pending:
            continue
        if st.state != "full":
            if mode == "required":
                raise UnsupportedError(layer, st.detail or st.state)
            degraded.append((layer, st))
    if policy.layers.file_mediation and not ({"landlock", "apparmor"} & ablate):
        ll, aa = states.get("landlock"), states.get("apparmor")
        by_landlock = (
            ll is not None
            and ll.state != "off"
            and host.landlock_abi >= 2
            and policy.layers.landlock != "disabled"
        )
        by_apparmor = aa is not None and aa.state == "full"
        if not (by_landlock or by_apparmor):
            raise UnsupportedError(
                "landlock",
                "file mediation needs Landlock (ABI >= 2) or AppArmor; "
                f"Landlock: {ll.detail if ll else 'off'}; AppArmor: {aa.detail if aa else 'off'}",
            )
    # Warnings only once the run is sure to go ahead: a refusal is one line.
    for layer, st in degraded if warn else ():
        log.warning("layer %s is %s: %s", layer, st.state, st.detail)
