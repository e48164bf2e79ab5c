"""Kernel Landlock tests: skip without Landlock; run each test at every ABI up to the host's.

Preparing a ruleset for an older ABI than the kernel's gives that ABI's
behaviour (an unhandled right is not mediated, and without REFER handled every
cross-directory rename/link is refused as on ABI 1), so the host's ABI 7
kernel also exercises what ABI 1..6 kernels do. The guest test checks a real
ABI 2 kernel.
"""

import pytest
from ll_harness import Trees

from sandbox.landlock.abi import probe

HOST_ABI = probe()


@pytest.fixture(autouse=True)
def _needs_landlock():
    if HOST_ABI == 0:
        pytest.skip("kernel without Landlock (ABI 0)")


@pytest.fixture(params=range(1, max(HOST_ABI, 1) + 1), ids=lambda a: f"abi{a}")
def abi(request):
    return request.param


@pytest.fixture
def trees(tmp_path):
    return Trees(tmp_path)
