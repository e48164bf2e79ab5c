"""What the kernel opens to execute a program: the #! interpreter and the ELF loader."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

import pytest

from sandbox.fs.exe import elf_loader, read_head, script_interpreter


def test_a_dynamic_elf_names_its_loader():
    assert elf_loader(read_head(os.path.realpath(sys.executable))) in (
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
    )


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_a_static_elf_has_no_loader(tmp_path):
    src = tmp_path / "s.c"
    src.write_text("int main(void) { return 0; }\n")
    out = tmp_path / "s"
    r = subprocess.run(["gcc", "-static", "-o", str(out), str(src)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("no static libc")
    assert elf_loader(read_head(str(out))) is None


def test_scripts_name_their_interpreter():
    assert script_interpreter(b"#!/usr/bin/python3 -u\nprint(1)\n") == "/usr/bin/python3"
    assert script_interpreter(b"#! /bin/sh\n") == "/bin/sh"
    assert script_interpreter(b"#!\n") is None
    assert script_interpreter(b"\x7fELF") is None


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x7fELF",
        b"\x7fELF\x02\x01" + b"\0" * 60,  # no program headers
        b"\x7fELF\x02\x01" + b"\0" * 26 + struct.pack("<Q", 1 << 40) + b"\0" * 30,  # far phoff
        b"\x7fELF\x02\x02" + b"\0" * 100,  # big-endian: not ours
    ],
)
def test_malformed_heads_give_no_loader(head):
    assert elf_loader(head) is None


def test_an_interp_segment_beyond_the_head_or_unterminated_is_refused():
    ph = struct.pack("<IIQQQQQQ", 3, 4, 0x200, 0, 0, 30, 30, 1)  # PT_INTERP at 0x200, 30 bytes
    hdr = bytearray(64)
    hdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", hdr, 0x20, 64)
    struct.pack_into("<HH", hdr, 0x36, 56, 1)
    assert elf_loader(bytes(hdr) + ph) is None  # the string lies beyond the bytes read
    body = bytes(hdr) + ph + b"\0" * (0x200 - 64 - 56) + b"/lib/x" + b"A" * 24
    assert elf_loader(body) is None  # not NUL-terminated


def test_read_head_never_follows_a_final_symlink(tmp_path):
    target = tmp_path / "t"
    target.write_bytes(b"#!/bin/sh\n")
    link = tmp_path / "l"
    link.symlink_to(target)
    assert read_head(str(target)) == b"#!/bin/sh\n"
    assert read_head(str(link)) == b""
    assert read_head(str(tmp_path)) == b""  # not a regular file
