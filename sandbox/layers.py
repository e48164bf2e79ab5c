"""The enforcement layers and how each was enforced on a run (bottom floor: no imports).

Every run record names each layer of :data:`LAYERS` with an
:class:`Enforcement` (``full``, ``partial`` or ``off`` and why). The names
are shared by the policy (``[layers]`` modes), the fail-closed check
(``sandbox.enforce``), verification and the run record, so they live below all
of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LAYERS = (
    "namespaces",
    "overlay",
    "capabilities",
    "no_new_privs",
    "landlock",
    "apparmor",
    "seccomp",
    "cgroups",
)

LayerState = Literal["full", "partial", "off"]


@dataclass(frozen=True, slots=True)
class Enforcement:
    """How one layer was enforced on this run, and why when not fully."""

    state: LayerState
    detail: str = ""
