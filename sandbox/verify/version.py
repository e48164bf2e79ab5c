"""Which library a verification comes from: the package version and a fingerprint of its sources.

Part of every report and of every cache key, so a verification is reused
only by the code that made it: an upgrade, or an edit of any rule, table or
group file, changes the fingerprint. It is taken from the paths, sizes and
modification times of the package's sources and data (``seccomp_policies/``
and the profiles, linked under ``sandbox/_data``; no file is read), once per
process.
"""

from __future__ import annotations

import functools
from pathlib import Path

from sandbox.fingerprint import fingerprint

VERIFY_FORMAT = 1  # bump when the meaning of a report changes without a source change
PACKAGE_DIR = Path(__file__).resolve().parents[1]


@functools.cache
def library_id() -> str:
    """``sandbox 0.1.0 verify 1 src <16 hex>``."""
    from sandbox import __version__ as version  # not importlib.metadata: 10 ms per CLI start

    return f"sandbox {version} verify {VERIFY_FORMAT} src {fingerprint(PACKAGE_DIR)}"
