"""The peers a user would pick instead of sandbox, found, checked and made comparable.

Binaries are looked up on PATH and in the directories named by
``SANDBOX_BENCH_PEERS`` (``os.pathsep``-separated; each directory, its
subdirectories and their ``bin/`` are searched, so one variable can name a
tree of builds such as ``peers/isolate1/isolate``, ``peers/isolate2/isolate``
and ``peers/bin/nsjail``). Every distinct binary found becomes a peer:

- **isolate** 1.x with ``--cg`` (v1 control groups), 2.x with ``--cg`` where
  its cgroup v2 set-up works and without it otherwise (said so); a box is
  initialised before timing, ``--run`` is timed, and a second row times the
  whole cycle a judge pays per submission (``--init``, ``--run``,
  ``--cleanup``);
- **nsjail** ``-Mo`` with every namespace (time too), the run's ids mapped to
  an unused host uid, read-only /usr, strict's allow-list as a kafel policy,
  memory and process limits in cgroups;
- **runc** and **crun** on a local OCI bundle (no registry is involved): an
  empty read-only root with the host's merged-usr links, /usr bound
  read-only, user namespace, memory and pids limits, no capabilities,
  no_new_privs, once without seccomp (runc's default) and once with strict's
  allow-list.

Each candidate command is run once first: a peer that cannot run here is
reported with the reason (one line) and left out, never timed as a fast one.
Each is then run with the static isolation probe (``bench/c/isoprobe.c``) in
place of /bin/true, so the table says what isolation each row really had.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.strictfilter import StrictFilter

ENV = "SANDBOX_BENCH_PEERS"
NAMES = ("isolate", "nsjail", "runc", "crun")
RUN_UID = 1999001000  # host uid/gid of the peers' payloads (no one else uses it)
MERGED = ("bin", "sbin", "lib", "lib64", "lib32", "libx32")
NS = ("user", "pid", "mnt", "net", "ipc", "uts", "cgroup", "time")


@dataclass
class Peer:
    """One timed peer: its command, its probe command, what it does and undoes."""

    name: str
    argv: list[str]
    probe: list[str]
    batch: int
    note: str = ""
    teardown: list[list[str]] = field(default_factory=list)
    isolation: str = "not probed"
    family: str = ""  # "runc", "isolate", ...: the targets pick their reference by it


def search_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Directories to search: the env variable's (and their subdirs, subdir/bin), then PATH."""
    env = os.environ if environ is None else environ
    out: list[Path] = []
    for d in filter(None, env.get(ENV, "").split(os.pathsep)):
        base = Path(d)
        if not base.is_dir():
            continue
        out.append(base)
        for sub in sorted(p for p in base.iterdir() if p.is_dir()):
            out += [sub, sub / "bin"]
    out += [Path(p) for p in env.get("PATH", os.defpath).split(os.pathsep) if p]
    return out


def find(name: str, dirs: list[Path]) -> list[str]:
    """Every distinct executable called ``name`` (first path of each real binary)."""
    seen: dict[str, str] = {}
    for d in dirs:
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            seen.setdefault(os.path.realpath(p), str(p))
    return list(seen.values())


def run_cmd(argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 255, "", str(e)
    return p.returncode, p.stdout, p.stderr


def why(rc: int, out: str, err: str) -> str:
    """One line saying why a command failed."""
    lines = [ln.strip() for ln in (err + "\n" + out).splitlines() if ln.strip()]
    # nsjail logs [I]/[W] lines before the fatal one: prefer errors
    bad = [ln for ln in lines if re.match(r"\[(E|F)\]", ln)] or lines
    return f"exit {rc}: {bad[-1][:200] if bad else 'no output'}"


def parse_probe(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key:
            out[key] = value.strip()
    return out


def describe(seen: dict[str, str], host: dict[str, str]) -> str:
    """What a probe's output says about isolation, against the host's own values."""
    if not seen:
        return "probe printed nothing"
    known = [n for n in NS if seen.get(f"ns:{n}") not in (None, "none")]
    shared = [n for n in known if seen[f"ns:{n}"] == host.get(f"ns:{n}")]
    unknown = [n for n in NS if n not in known]
    parts = []
    if not known:
        parts.append("ns unknown (no /proc)")
    else:
        why = [f"shares {', '.join(shared)}"] if shared else []
        why += [f"unknown {', '.join(unknown)}"] if unknown else []
        parts.append(
            f"new ns: {len(known) - len(shared)}/8" + (f" ({'; '.join(why)})" if why else "")
        )
    parts.append(f"uid {seen.get('uid', '?')}")
    cap = seen.get("capeff", "none")
    parts.append("caps none" if cap.strip("0") == "" else f"caps {cap}")
    parts.append("nnp" if seen.get("nnp") == "1" else "no nnp")
    parts.append("seccomp" if seen.get("seccomp") == "2" else "no seccomp")
    parts.append("/ ro" if seen.get("root_ro") == "1" else "/ rw")
    parts.append(f"net {seen.get('net_ifaces') or '-'}")
    return ", ".join(parts)


# ------------------------------------------------------------------ isolate ---


def _place_probe(probe: Path, dest: Path) -> None:
    """Copy the probe into a directory a sandboxed user owns, never through a planted link.

    The box is fresh after ``--init``, but its owner is the box's uid: O_EXCL
    and O_NOFOLLOW make a name that already exists (a link left by anyone)
    an error instead of a write through it as root.
    """
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    with os.fdopen(fd, "wb") as f:
        f.write(probe.read_bytes())
        os.fchmod(f.fileno(), 0o755)


def _isolate(exe: str, box: int, probe: Path) -> Iterator[Peer | str]:
    rc, out, err = run_cmd([exe, "--version"])
    m = re.search(r"isolator (\d+)\.(\d+)(?:\.(\d+))?", out + err)
    if not m:
        yield f"isolate ({exe}): cannot tell its version: {why(rc, out, err)}"
        return
    version = ".".join(g for g in m.groups() if g)
    label = f"isolate {version}"
    limits = ["--processes=64", "--open-files=64", "--fsize=65536", "--stack=8192"]
    for cg in (["--cg"], []):
        box_args = [exe, *cg, f"--box-id={box}"]
        run_cmd([*box_args, "--cleanup"])
        rc, out, err = run_cmd([*box_args, "--init"])
        if rc != 0:
            yield f"{label} {' '.join(cg) or '(no --cg)'}: cannot run here: {why(rc, out, err)}"
            continue
        boxdir = Path(out.strip().splitlines()[-1]) / "box"
        mem = ["--cg-mem=262144"] if cg else ["--mem=262144"]
        run = [*box_args, *limits, *mem, "--run", "--"]
        rc, out, err = run_cmd([*run, "/bin/true"])
        if rc != 0:
            run_cmd([*box_args, "--cleanup"])
            yield f"{label} {' '.join(cg)}: cannot run here: {why(rc, out, err)}"
            continue
        placed = ""
        try:
            _place_probe(probe, boxdir / "isoprobe")
        except OSError as e:
            placed = f"probe not placed in the box: {e}"
        note = "" if cg else "no --cg: its cgroup set-up fails here (see above), so no limits"
        teardown = [[*box_args, "--cleanup"]]
        cgs = " --cg" if cg else ""
        peer = Peer(
            f"{label}{cgs} --run (box made ahead)",
            [*run, "/bin/true"],
            [] if placed else [*run, "/box/isoprobe"],
            20,
            note,
            teardown,
            family="isolate",
        )
        if placed:
            peer.isolation = placed
        yield peer
        # The whole cycle on a box of its own (its --cleanup must not take the other's box).
        cycle = [exe, *cg, f"--box-id={box + 1}"]
        run_c = [*cycle, *limits, *mem, "--run", "--", "/bin/true"]
        yield Peer(
            f"{label}{cgs} --init, --run, --cleanup",
            [*cycle, "--init", ":::", *run_c, ":::", *cycle, "--cleanup"],
            [],
            10,
            "a judge's whole cycle per submission",
            [[*cycle, "--cleanup"]],
            family="isolate",
        )
        return


# ------------------------------------------------------------------- nsjail ---


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path in the v1 hierarchy of ``controller`` (relative)."""
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return path.strip("/") or "."
    return None


def _nsjail(exe: str, strict: StrictFilter | None, probe: Path) -> Iterator[Peer | str]:
    base = [exe, "-Mo", "-Q", "--enable_clone_newtime", "--hostname", "sandbox"]
    base += ["-u", f"1000:{RUN_UID}:1", "-g", f"1000:{RUN_UID}:1", "-R", "/usr"]
    base += ["--rlimit_nofile", "64", "--rlimit_fsize", "64", "--rlimit_stack", "8"]
    for d in MERGED:
        p = Path("/") / d
        if p.is_symlink():
            base += ["-s", f"{os.readlink(p)}:/{d}"]
        elif p.is_dir():
            base += ["-R", f"/{d}"]
    cg: list[str] = []
    mem, pids = _own_cgroup("memory"), _own_cgroup("pids")
    if mem is not None and pids is not None:
        cg = ["--cgroup_mem_max", str(256 << 20), "--cgroup_mem_parent", mem]
        cg += ["--cgroup_pids_max", "64", "--cgroup_pids_parent", pids]
    else:
        cg = ["--use_cgroupv2", "--cgroup_mem_max", str(256 << 20), "--cgroup_pids_max", "64"]
    sec = ["-P", str(strict.kafel)] if strict else []
    notes = [] if strict else ["strict's filter could not be exported: no seccomp"]
    for opts, note in ((cg, ""), ([], "no cgroup limits (nsjail's cgroup set-up failed here)")):
        argv = [*base, *sec, *opts]
        rc, out, err = run_cmd([*argv, "--", "/bin/true"])
        if rc != 0:
            how = "" if opts else " without cgroups"
            yield f"nsjail ({exe}){how}: cannot run here: {why(rc, out, err)}"
            continue
        yield Peer(
            "nsjail -Mo, strict's allow-list (kafel)" if strict else "nsjail -Mo",
            [*argv, "--", "/bin/true"],
            [*argv, "-R", f"{probe}:/isoprobe", "--", "/isoprobe"],
            20,
            "; ".join(filter(None, [*notes, note])),
            family="nsjail",
        )
        return


# ---------------------------------------------------------------- runc/crun ---


def _rootfs(root: Path, probe: Path) -> None:
    """An empty root with mount points, the host's merged-usr links and the probe."""
    if root.exists():
        return
    root.mkdir(parents=True)
    for d in ("usr", "proc", "dev", "tmp", "box", "etc", "sys"):
        (root / d).mkdir()
    for d in MERGED:
        p = Path("/") / d
        if p.is_symlink():
            os.symlink(os.readlink(p), root / d)
        elif p.is_dir():
            (root / d).mkdir()
    shutil.copy(probe, root / "isoprobe")
    os.chmod(root / "isoprobe", 0o755)


def _oci_config(
    spec: dict[str, object],
    root: Path,
    args: list[str],
    seccomp: dict[str, object] | None,
    time_ns: bool,
) -> dict[str, object]:
    cfg: dict[str, Any] = json.loads(json.dumps(spec))
    proc = cfg["process"]
    proc.update(terminal=False, args=args, cwd="/", noNewPrivileges=True)
    proc["user"] = {"uid": 1000, "gid": 1000}
    proc["capabilities"] = {
        k: [] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
    }
    proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 64}]
    cfg["root"] = {"path": str(root), "readonly": True}
    cfg["hostname"] = "sandbox"
    binds = [(d, d) for d in ("/usr",)] + [
        (f"/{d}", f"/{d}")
        for d in MERGED
        if Path(f"/{d}").is_dir() and not Path(f"/{d}").is_symlink()
    ]
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] not in ("/usr",)] + [
        {
            "destination": dst,
            "type": "bind",
            "source": src,
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }
        for src, dst in binds
    ]
    linux = cfg["linux"]
    kinds = ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"] + (
        ["time"] if time_ns else []
    )
    linux["namespaces"] = [{"type": k} for k in kinds]
    mapping = [{"containerID": 0, "hostID": RUN_UID - 1000, "size": 65536}]
    linux["uidMappings"] = mapping
    linux["gidMappings"] = mapping
    linux["resources"] = {
        **linux.get("resources", {}),
        "memory": {"limit": 256 << 20, "swap": 256 << 20},
        "pids": {"limit": 64},
    }
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return cfg


def _oci(
    name: str, exe: str, tmp: Path, strict: StrictFilter | None, probe: Path
) -> Iterator[Peer | str]:
    work = tmp / name
    work.mkdir(exist_ok=True)
    rootfs = tmp / "oci-rootfs"
    _rootfs(rootfs, probe)
    rc, out, err = run_cmd([exe, "spec", "--bundle", str(work)])
    if rc != 0:
        # crun and older runc: "spec" writes into the current directory
        try:
            p = subprocess.run([exe, "spec"], cwd=work, capture_output=True, text=True, timeout=60)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            rc, err = 255, str(e)
    if rc != 0 or not (work / "config.json").exists():
        yield f"{name}: `{name} spec` failed: {why(rc, out, err)}"
        return
    spec = json.loads((work / "config.json").read_text())
    (work / "config.json").unlink()
    state = ["--root", str(tmp / f"{name}-state")]
    filters: list[tuple[str, dict[str, object] | None]] = [("", None)]
    if strict:
        filters.append((" + strict's allow-list", strict.oci_for_runtime()))
    for label, seccomp in filters:
        last = ""
        for time_ns in (True, False):
            bundle = work / f"b{len(label)}{int(time_ns)}"
            pbundle = work / f"p{len(label)}{int(time_ns)}"
            for b, args in ((bundle, ["/bin/true"]), (pbundle, ["/isoprobe"])):
                b.mkdir(exist_ok=True)
                cfg = _oci_config(spec, rootfs, args, seccomp, time_ns)
                (b / "config.json").write_text(json.dumps(cfg))
            cid = f"sbxbench-{os.getpid()}-{name}"
            argv = [exe, *state, "run", "--bundle", str(bundle), cid]
            rc, out, err = run_cmd(argv)
            if rc != 0:
                last = why(rc, out, err)
                continue
            yield Peer(
                f"{name} run (OCI bundle: userns, ro root{label})",
                argv,
                [exe, *state, "run", "--bundle", str(pbundle), cid + "-p"],
                5,
                "" if time_ns else f"no time namespace ({name} refused it: {last})",
                family=name,
            )
            break
        else:
            yield f"{name}{label}: installed, cannot run a container here: {last}"
            return


# --------------------------------------------------------------- discovery ---


def discover(tmp: Path, probe: Path, strict: StrictFilter | None) -> tuple[list[Peer], list[str]]:
    """The peers that run here (probed), and one line per peer that is absent or cannot run."""
    dirs = search_dirs()
    probe = probe.resolve()
    tmp.chmod(0o755)  # the OCI root must be reachable by the container's mapped root
    peers: list[Peer] = []
    lines: list[str] = []
    makers: dict[str, Callable[[str, int], Iterator[Peer | str]]] = {
        "isolate": lambda exe, i: _isolate(exe, 57 + 2 * i, probe),
        "nsjail": lambda exe, i: _nsjail(exe, strict, probe),
        "runc": lambda exe, i: _oci("runc", exe, tmp, strict, probe),
        "crun": lambda exe, i: _oci("crun", exe, tmp, strict, probe),
    }
    for name in NAMES:
        found = find(name, dirs)
        if not found:
            lines.append(f"{name}: not found (PATH, ${ENV})")
        for i, exe in enumerate(found):
            for item in makers[name](exe, i):
                if isinstance(item, str):
                    lines.append(item)
                elif failed := preflight(item):
                    lines.append(failed)
                else:
                    peers.append(item)
    return peers, lines


def commands(argv: list[str]) -> list[list[str]]:
    """The commands of a ``forkexec`` sequence (``A ::: B ::: C``)."""
    out: list[list[str]] = [[]]
    for a in argv:
        if a == ":::":
            out.append([])
        else:
            out[-1].append(a)
    return out


def preflight(peer: Peer) -> str | None:
    """None when one timed run of the peer works here, else the line saying why not."""
    for cmd in commands(peer.argv):
        rc, out, err = run_cmd(cmd)
        if rc != 0:
            return f"{peer.name}: cannot run here: {why(rc, out, err)}"
    return None


def probe_all(peers: list[Peer], host: dict[str, str]) -> None:
    """Run each peer's probe command; record what isolation it showed."""
    for p in peers:
        if not p.probe:
            if p.isolation == "not probed":
                p.isolation = "as the row above"
            continue
        rc, out, err = run_cmd(p.probe)
        p.isolation = (
            describe(parse_probe(out), host) if rc == 0 else f"probe failed: {why(rc, out, err)}"
        )


def teardown(peers: list[Peer]) -> None:
    for p in peers:
        for argv in p.teardown:
            run_cmd(argv)
