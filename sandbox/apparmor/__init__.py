"""AppArmor layer: a generated per-program profile, held per run, entered at exec.

Where each piece is called (B4-B6):

- supervisor start, once: ``host.detect()`` (is AppArmor on, can we load,
  Ubuntu's userns restriction) and ``lifetime.sweep()`` (profiles left by
  supervisors that died);
- plan, before fork (pure): ``render.prepare(policy, program=, interpreter=,
  parser_features=parser.probe_parser())`` → ``AppArmorArtifact``; verify
  runs ``parser.compile_check(artifact.text)``;
- supervisor, before spawning the launcher: ``lifetime.hold(artifact)``
  (loads the profile if no run has it loaded); the plan carries only
  ``artifact.name``;
- launcher child, after pivot_root and the new /proc, before no_new_privs,
  caps, Landlock and seccomp: ``onexec.apply_in_child(name, write)``;
- supervisor cleanup, after every task of the run has exited:
  ``lifetime.release(hold)`` (removes the profile if no other run holds it).

This file imports nothing: the launcher imports ``sandbox.apparmor.onexec``
before its first restriction, and must not pull in pydantic or subprocess.
"""
