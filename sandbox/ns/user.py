"""User namespaces: the uid/gid maps, written from the parent namespace (STYLE B5 step 2).

Runs in whoever owns the parent side of a run's new user namespace (the fork
server, as root in the initial namespace): only a process in the parent
namespace may map ids other than its own.
"""

from __future__ import annotations


def write_id_maps(pid: int, inside: tuple[int, int], host: tuple[int, int]) -> None:
    """Map exactly one uid and one gid (never an identity map); setgroups denied."""
    (iu, ig), (hu, hg) = inside, host
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"{iu} {hu} 1\n")
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"{ig} {hg} 1\n")
