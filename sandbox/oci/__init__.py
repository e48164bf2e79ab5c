"""``sandbox-runtime``: an OCI runtime that runs a bundle through sandbox's pipeline.

Engines (podman through conmon, containerd through its runc v2 shim) drive
it as they drive runc. A bundle's ``config.json`` becomes a policy
(``oci.bundle`` parses and refuses what cannot be enforced, ``oci.convert``
maps it onto a profile, intersected with a ``run.sandbox.profile``
annotation), which goes through the same compile -> verify -> acquire ->
launch -> supervise -> release pipeline as ``sandbox exec``, held by one
detached supervisor process per container (``oci.shim``). Light commands
(``state``, ``start``, ``kill``, ``delete``...) import only ``oci.main``,
``oci.state`` and ``oci.ctl``.
"""
