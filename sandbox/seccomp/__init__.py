"""Seccomp layer: syscall allow-lists compiled to BPF in the supervisor.

- ``groups``: reviewed syscall groups (``seccomp_policies/``) and
  ``resolve(Seccomp) -> SeccompSpec`` / ``check_names``;
- ``build``: ``prepare(Seccomp, arch) -> SeccompArtifact`` with libseccomp,
  cached by key (``cache`` for the on-disk part);
- ``bpf``: classic-BPF decoder, interpreter and disassembler;
- ``reference``: the expected action for any syscall, without libseccomp;
- ``tables``: per-arch syscall numbers kept as data (made by tools/gen_seccomp_tables.py).

Only the supervisor compiles. The child receives ``artifact.bpf`` and
``artifact.flags`` and makes one ``seccomp(SECCOMP_SET_MODE_FILTER)`` call
right before ``execve``; it never loads libseccomp, so this package's
``__init__`` imports nothing.
"""
