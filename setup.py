"""Build hook: compile the native launcher (sandbox/launcher/native/*.c) with the package.

``pip install .``, ``pip wheel .`` and the editable install of scripts/setup.sh
all run ``build_ext``; this one links the ``sandbox-launcher`` executable into
the package (``sandbox/launcher/sandbox-launcher``), where
``sandbox.launcher.native`` finds it, installed or in a checkout. libc only,
``-Wall -Wextra -Werror -D_FORTIFY_SOURCE=2`` (``sandbox/launcher/nativebuild.py``).
The wheel is platform-specific because of it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext

_spec = importlib.util.spec_from_file_location(
    "nativebuild", Path(__file__).resolve().parent / "sandbox" / "launcher" / "nativebuild.py"
)
assert _spec is not None and _spec.loader is not None
nativebuild = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nativebuild)


class NativeDistribution(Distribution):
    """Has binaries: build_ext runs and the wheel is tagged for this platform."""

    def has_ext_modules(self) -> bool:
        return True


class BuildNative(build_ext):
    """build_ext that also links the launcher executable into the package."""

    def _target(self) -> Path:
        return Path(self.build_lib) / "sandbox" / "launcher" / nativebuild.BINARY_NAME

    def run(self) -> None:
        super().run()
        nativebuild.compile_launcher(self._target())
        if self.inplace or getattr(self, "editable_mode", False):
            # Beside the copy in use (a running server keeps its file busy), then
            # renamed over it: running servers keep the old inode.
            final = nativebuild.SRC.parent / nativebuild.BINARY_NAME
            tmp = final.with_name(final.name + ".new")
            shutil.copy2(self._target(), tmp)
            os.replace(tmp, final)

    def get_outputs(self) -> list[str]:
        return [*super().get_outputs(), str(self._target())]


# bin/sandbox: the command, a plain script (see its docstring) so its start stays lean.
setup(distclass=NativeDistribution, cmdclass={"build_ext": BuildNative}, scripts=["bin/sandbox"])
