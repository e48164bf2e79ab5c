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


def remove(c: Container, st: dict[str, Any]) -> None:
    """Remove the container's leftovers and its state directory."""
    # Only leaves sandbox made (state.json is root's, but check what we rmdir anyway).
    dirs = [
        d
        for d in st.get("cgroup_dirs", [])
        if isinstance(d, str)
        and d.startswith("/sys/fs/cgroup/")
        and "/sbx-" in d
        and ".." not in d.split("/")
        and os.path.isdir(d)  # a supervisor that ended released its own
    ]
    if dirs:
        from sandbox.cgroups.leaf import remove_dirs

        remove_dirs(dirs)
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
