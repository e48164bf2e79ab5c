#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine for sandbox: system packages
# and the virtual environment at .venv/ in this checkout. Sourced by
# scripts/demo and scripts/test; safe to run again at any time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# What the product needs at run time (libseccomp2, libapparmor1, apparmor for
# apparmor_parser), what the build needs (gcc, libc6-dev, python3-dev; gcc also
# builds the native launcher), what the venv needs (python3-venv) and what
# tests/bench use (gcc for probes and the bench's C harnesses, bubblewrap as the
# benchmark's peer, make for `make bench`, e2fsprogs/util-linux for loop
# devices, clang with its runtime for libFuzzer and ASan/UBSan over the native
# launcher's plan decoder), and the container engines that drive
# sandbox-runtime in its tests and bench (podman with conmon, containerd with
# its runc v2 shim, CNI plugins for podman's default network, and
# busybox-static for the images and bundles the tests build locally).
PKGS=(libseccomp2 libapparmor1 apparmor gcc libc6-dev python3 python3-dev
      python3-venv bubblewrap util-linux e2fsprogs procps make clang libclang-rt-14-dev
      podman conmon containerd containernetworking-plugins busybox-static)

# The bench's OCI peers (about 10 MB): runc, and crun (which refuses hybrid
# cgroup hosts; the bench reports that and goes on).
PKGS+=(runc crun)
# The judge tests' languages (tests/integration/test_judge_problemset.py and the
# judge profiles' tests): C++ (g++) and Java (Debian's headless JDK, whose
# conf/ links into /etc/java-17-openjdk).
PKGS+=(g++ openjdk-17-jdk-headless)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing system packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt/dpkg to finish instead of failing on its lock.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's own python3 (3.11 on Debian 12) is the reference interpreter; any
# python >= 3.11 works.
PY=""
for cand in /usr/bin/python3 python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PY="$(command -v "$cand")"; break
    fi
done
[[ -n "$PY" ]] || { echo "setup: no python >= 3.11 with venv found" >&2; exit 1; }

# The native launcher is built by the install (setup.py): its sources are in the stamp.
stamp_want="$(cat pyproject.toml setup.py bin/sandbox scripts/setup.sh sandbox/launcher/nativebuild.py sandbox/launcher/native/*.[ch] | sha256sum | cut -c1-16) $PY"
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    rm -rf .venv
    "$PY" -m venv .venv
fi
if [[ "$(cat .venv/.sandbox-stamp 2>/dev/null)" != "$stamp_want" ]]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e '.[test]' 2> >(grep -v 'is ignored: it is neither' >&2)
    echo "$stamp_want" > .venv/.sandbox-stamp
fi

# Bytecode for our own package: these machines set PYTHONDONTWRITEBYTECODE=1,
# and compiling every module at each start would triple the CLI's start-up.
.venv/bin/python -m compileall -q -j 0 sandbox >/dev/null
