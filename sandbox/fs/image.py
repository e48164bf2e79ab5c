"""The default image: a small read-only lower layer built from the host, cached by key.

It holds what is not bound from the host: ``/etc`` from an allow-list (plus a
generated passwd/group/hosts/hostname), the merged-usr symlinks (``/bin ->
usr/bin`` ...) as the host has them, and empty mount points. ``/usr`` itself
is bound read-only from the host by the mount plan. Built once per key
(allow-list contents, the copied files' metadata, the identity) into
``<state>/images/<key>`` by a rename, so concurrent runs never see half an
image. Runs in the supervisor; needs write access to the state directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import PolicyError, SetupError
from sandbox.fs.ops import MERGED_USR

IMAGE_FORMAT = 2
MOUNT_POINTS = ("box", "tmp", "proc", "dev", "usr", "root", "home", "run", "var", "var/tmp")


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """Inputs of the default image; its key depends on these and the files' metadata."""

    allowlist: tuple[str, ...]
    uid: int
    gid: int
    user: str
    hostname: str


def read_allowlist(path: Path) -> tuple[str, ...]:
    """Entries of an allow-list file (comments and blanks dropped).

    Raises:
        PolicyError: when the file is missing or an entry escapes /etc.
    """
    try:
        text = path.read_text()
    except OSError as e:
        raise PolicyError(f"etc allow-list {path}: {e.strerror}") from e
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if entry.startswith("/") or ".." in entry.split("/"):
            raise PolicyError(f"{path}:{n}: entry {entry!r} must be relative to /etc")
        out.append(entry)
    return tuple(out)


def _expand(etc: Path, entries: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    for entry in entries:
        if entry.endswith("*"):
            prefix = entry[:-1]
            parent = etc / os.path.dirname(prefix)
            base = os.path.basename(prefix)
            try:
                found = sorted(p.name for p in parent.iterdir() if p.name.startswith(base))
            except OSError:
                found = []
            names += [os.path.join(os.path.dirname(prefix), f) for f in found]
        elif os.path.lexists(etc / entry):
            names.append(entry)
    return names


def _generated(spec: ImageSpec) -> dict[str, str]:
    return {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"{spec.user}:x:{spec.uid}:{spec.gid}:{spec.user}:/box:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\n{spec.user}:x:{spec.gid}:\nnogroup:x:65534:\n",
        "hostname": f"{spec.hostname}\n",
        "hosts": f"127.0.0.1\tlocalhost {spec.hostname}\n::1\tlocalhost ip6-localhost\n",
    }


def image_key(spec: ImageSpec, etc: Path = Path("/etc"), root: Path = Path("/")) -> str:
    """Content key: changes when the allow-list, a copied file or the host layout does."""
    h = hashlib.sha256(f"format={IMAGE_FORMAT}\n".encode())
    for name in _expand(etc, spec.allowlist):
        _hash_tree(h, os.path.join(etc, name))
    for k, v in sorted(_generated(spec).items()):
        h.update(f"{k}={v}".encode())
    for link in MERGED_USR:
        p = root / link
        h.update(f"{link}->{os.readlink(p) if p.is_symlink() else p.is_dir()}\n".encode())
    return h.hexdigest()[:32]


def _hash_tree(h: hashlib._Hash, path: str) -> None:
    st = os.lstat(path)
    h.update(f"{path}:{st.st_mode}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\n".encode())
    if stat.S_ISDIR(st.st_mode):
        # A symlink is only ever replaced, never edited, and replacing an entry changes
        # the directory's mtime (hashed above): symlinks need no stat of their own
        # (/etc/alternatives holds hundreds). Files and directories may be edited in place.
        with os.scandir(path) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.is_symlink():
                    h.update(f"{e.path}:l\n".encode())
                elif e.is_dir(follow_symlinks=False):
                    _hash_tree(h, e.path)
                else:
                    s = e.stat(follow_symlinks=False)
                    h.update(f"{e.path}:{s.st_mode}:{s.st_size}:{s.st_mtime_ns}\n".encode())


def _copy_entry(src: Path, dst: Path) -> None:
    st = src.lstat()
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(st.st_mode):
        dst.mkdir(mode=0o755)
        for child in sorted(src.iterdir()):
            _copy_entry(child, dst / child.name)
        os.chmod(dst, stat.S_IMODE(st.st_mode) & 0o755)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        # No set-id bits, no group/other write; unreadable files stay unreadable.
        os.chmod(dst, stat.S_IMODE(st.st_mode) & 0o755)


def build(spec: ImageSpec, dest: Path, etc: Path = Path("/etc"), root: Path = Path("/")) -> None:
    """Write the image tree into ``dest`` (which must not exist)."""
    dest.mkdir(mode=0o755)
    for d in MOUNT_POINTS:
        (dest / d).mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)  # noqa: S103 - sticky world-writable, like every /tmp
    os.chmod(dest / "var/tmp", 0o1777)  # noqa: S103
    os.chmod(dest / "root", 0o700)
    for link in MERGED_USR:
        p = root / link
        if p.is_symlink():
            os.symlink(os.readlink(p), dest / link)
        elif p.is_dir():
            (dest / link).mkdir(mode=0o755)  # not merged-usr: bound from the host by the plan
    (dest / "etc").mkdir(mode=0o755)
    for name in _expand(etc, spec.allowlist):
        target = dest / "etc" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_entry(etc / name, target)
    for name, content in _generated(spec).items():
        (dest / "etc" / name).write_text(content)
        os.chmod(dest / "etc" / name, 0o644)


def ensure(spec: ImageSpec, state_dir: Path, key: str | None = None) -> tuple[Path, int]:
    """Return the cached image directory for ``spec`` and a shared lock fd that pins it.

    The caller keeps the fd open for the run's life: pruning takes an exclusive
    lock first, so an image under a mounted overlay is never deleted (changing
    an overlay's lower layer while mounted is undefined behaviour).

    Raises:
        SetupError: when the image cannot be written.
    """
    key = key or image_key(spec)
    images = state_dir / "images"
    final = images / key
    try:
        lock_path = images / f"{key}.lock"
        try:  # the lock exists after the first run: no mkdir (and its stat) per run
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            images.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_SH)
        if not final.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=images))
            try:
                os.rmdir(tmp)
                build(spec, tmp)
                try:
                    os.rename(tmp, final)
                except OSError:
                    if not final.is_dir():
                        raise
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            _prune(images, keep=key)
    except OSError as e:
        raise SetupError("image", f"cannot build the default image in {images}: {e}") from e
    return final, lock


def _prune(images: Path, keep: str, max_images: int = 8) -> None:
    """Drop the oldest unused images beyond ``max_images``."""
    dirs = sorted(
        (
            p
            for p in images.iterdir()
            if p.is_dir() and not p.name.startswith(".") and p.name != keep
        ),
        key=lambda p: p.stat().st_mtime,
    )
    for p in dirs[: max(0, len(dirs) - (max_images - 1))]:
        lock_path = images / f"{p.name}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a run still uses it
        shutil.rmtree(p, ignore_errors=True)
        os.unlink(lock_path)
        os.close(fd)
