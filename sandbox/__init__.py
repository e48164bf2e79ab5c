"""sandbox: run untrusted programs with security first (library entry point).

    from sandbox import Sandbox, Verdict
    with Sandbox("strict") as sb:
        result = sb.run(["./a.out"], stdin=b"...", limits={"cpu_time": 1})

Names are imported lazily, so ``import sandbox`` (and the CLI) stay cheap.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Sandbox": "sandbox.api",
    "RunHandle": "sandbox.api",
    "InteractiveResult": "sandbox.api",
    "run": "sandbox.api",
    "RunResult": "sandbox.runner.result",
    "Verdict": "sandbox.runner.result",
    "Usage": "sandbox.runner.result",
    "Enforcement": "sandbox.layers",
    "Violation": "sandbox.runner.result",
    "File": "sandbox.fs.staging",
    "Symlink": "sandbox.fs.staging",
    "SandboxError": "sandbox.errors",
    "PolicyError": "sandbox.errors",
    "UnsupportedError": "sandbox.errors",
    "SpawnError": "sandbox.errors",
    "ProgramNotFound": "sandbox.errors",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
