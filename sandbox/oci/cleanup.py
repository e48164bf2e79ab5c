"""``delete``: remove what a container left, also when its supervisor crashed.

A living supervisor releases everything itself; this removes what a dead
one could not: tasks and leaf directories (``cgroups.leaf.remove_dirs``:
killed, then rmdir'd), the run lock, then the poststop hooks run and the
state directory goes. Each step is idempotent, so ``delete --force`` can be
repeated until nothing is left.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from sandbox.oci.state import Container

_CGROUP_MAGICS = (0x27E0EB, 0x63677270)  # cgroup, cgroup2 (cgroups.kernel)


def _cgroup_dir(d: Any) -> bool:
    """A directory below a cgroup hierarchy's root, named plainly (state.json is root's
    and 0600, but what is killed and rmdir'd is checked all the same)."""
    if not isinstance(d, str) or not d.startswith("/sys/fs/cgroup/"):
        return False
    parts = d.split("/")
    if any(p in ("", ".", "..") for p in parts[1:]) or len(parts) < 5:
        return False
    if not os.path.isdir(d) or os.path.islink(d) or os.path.ismount(d):
        return False  # gone: a supervisor that ended released its own
    from sandbox.cgroups.kernel import statfs_magic

    try:
        return statfs_magic(d) in _CGROUP_MAGICS
    except OSError:
        return False


def remove(c: Container, st: dict[str, Any]) -> None:
    """Remove the container's leftovers and its state directory."""
    # The leaf (sandbox's own or at the engine's linux.cgroupsPath), killed and removed;
    # then the parents made for it, removed only when empty (never killed: not ours).
    dirs = [d for d in st.get("cgroup_dirs", []) if _cgroup_dir(d)]
    parents = [d for d in st.get("cgroup_parents", []) if _cgroup_dir(d)]
    if dirs or parents:
        from sandbox.cgroups.kernel import CgroupIO
        from sandbox.cgroups.leaf import remove_dirs, remove_parents

        remove_dirs(dirs)
        remove_parents(parents, CgroupIO())
    lock = st.get("lock_file")
    if isinstance(lock, str) and lock.endswith(".lock") and "/runs/" in lock:
        with contextlib.suppress(OSError):
            os.unlink(lock)
    hooks = st.get("poststop") or []
    if hooks:
        from sandbox.oci.shim import CreateError, run_hook

        state = json.dumps(
            {
                "ociVersion": "1.0.2",
                "id": c.id,
                "status": "stopped",
                "bundle": st.get("bundle", ""),
                "annotations": st.get("annotations", {}),
            }
        )
        for h in hooks:
            with contextlib.suppress(CreateError):  # runtime-spec: poststop errors are logged
                run_hook(h, state, f"poststop hook {h.get('path')}")
    for p in c.dir.iterdir() if c.dir.is_dir() else ():
        with contextlib.suppress(OSError):
            p.unlink()
    with contextlib.suppress(OSError):
        c.dir.rmdir()
