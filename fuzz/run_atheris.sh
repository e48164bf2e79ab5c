#!/usr/bin/env bash
# Run the atheris harness (fuzz/atheris_profile_load.py) for SECONDS (default 60):
#   fuzz/run_atheris.sh 300
# Installs atheris into .venv when missing (PyPI ships wheels for CPython
# 3.11 on x86-64 Linux; elsewhere pip needs clang with libFuzzer to build it).
# The corpus grows in .fuzz-corpus/profile_load (seeded with the shipped and
# test profiles); crashes are written to .fuzz-corpus/crashes/. Exit status:
# libFuzzer's (0 when nothing was found).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
[[ -x .venv/bin/python ]] || ./scripts/setup.sh
if ! .venv/bin/python -c 'import atheris' 2>/dev/null; then
    echo "run_atheris: installing atheris into .venv" >&2
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check atheris; then
        echo "run_atheris: atheris did not install (no wheel for this Python, and no clang/libFuzzer to build it)" >&2
        exit 1
    fi
fi
corpus=".fuzz-corpus/profile_load"
crashes=".fuzz-corpus/crashes"
mkdir -p "$corpus" "$crashes"
for f in profiles/*.toml tests/fixtures/profiles/*.toml; do
    cp -n "$f" "$corpus/seed-$(basename "$f")"
done
# libFuzzer ends with exit(), which skips Python's atexit: the harness's scratch
# directory is made and removed here.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/sbx-atheris-XXXXXXXX")"
trap 'rm -rf "$scratch"' EXIT
SBX_FUZZ_SCRATCH="$scratch" .venv/bin/python fuzz/atheris_profile_load.py \
    -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="$crashes/" "$corpus"
