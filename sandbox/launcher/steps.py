"""The child side of a run: ordered steps from fork to execve (STYLE B5).

Three processes, each a flat list of steps (and a fourth after the payload
ended, when files are to be collected):

- **outer** (forked by the fork server; root in the initial namespaces):
  parent-death signal, new session, no supplementary groups, the detached
  mounts, ``unshare`` of every namespace (the user namespace first: it owns
  the others), then waits until the server has written the id maps. It forks
  the container's init and stays outside as a monitor, relaying its status.
- **init** (PID 1 of the new pid namespace): assembles the root and pivots
  into it, sets hostname, loopback and the nested-userns limit, then forks the
  payload, reaps everything and reports the payload's wait status and rusage.
  The payload is never PID 1: the kernel ignores default-action signals sent
  to a namespace's init, so abort(), SIGXFSZ and SIGXCPU would not end it.
- **payload**: AppArmor change-on-exec, no_new_privs, bounding set, joins its
  cgroup leaf (so the launcher's pages stay charged elsewhere), cgroup
  namespace, ids, final capabilities, rlimits, Landlock, fds closed, seccomp
  last, execve.
- **handover** (init again, once the payload is forked): with a notifying
  filter, init copies the payload's listener, passes it to the supervisor and
  only then lets the payload go on to execve; it holds its copy until the
  payload has exited (step_take_listener). The supervisor is never waited for.
- **collector** (forked by init once the payload and everything it left are
  gone, only when files of /box are to be returned): takes no more rights than
  the payload had (its ids, no capability, no_new_privs, its Landlock domain)
  and reads each name beneath a /box fd with openat2, never through a symlink,
  a magic link or another mount (issue 13 item 1).

The native launcher (``sandbox/launcher/native``) runs the same step lists,
by name, in C; ``tests/unit/launcher/test_native_parity.py`` compares them.

Every step takes the :class:`Ctx` and calls the kernel only through
``ctx.sc``; any ``OSError`` becomes ``step:errno:message`` on the errpipe and
exit status 125. Nothing is logged here (the child reports; the supervisor logs).
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from sandbox.apparmor.onexec import apply_in_child as apparmor_onexec
from sandbox.caps.drop import drop_bounding, set_final
from sandbox.caps.names import CAPS
from sandbox.cgroups.join import join_with_fds
from sandbox.fs.mounts import DetachedMounts, attach, prepare_detached
from sandbox.landlock.restrict import apply_in_child as landlock_apply
from sandbox.launcher.protocol import (
    COLLECTOR_FAILED,
    CONSOLE_TAG,
    EXEC_READY,
    EXIT_SPAWN_FAILED,
    GATE_OPEN,
    GATE_READY,
    LISTENER_NUMBER_TAG,
    MAPS_WRITTEN,
    NOT_REGULAR,
    NOTIFY_TAKEN,
    TOO_BIG,
    USERNS_READY,
    PayloadStatus,
    collect_code,
    encode_failure,
    encode_file,
)
from sandbox.plan import LaunchPlan
from sandbox.syscalls.api import Syscalls
from sandbox.syscalls.consts import (
    AT_FDCWD,
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    CloneFlag,
    CloseRange,
    Prctl,
)

CAP_SYS_ADMIN = CAPS["CAP_SYS_ADMIN"]


@dataclass(frozen=True, slots=True)
class LaunchFds:
    """Descriptors handed to the child (numbers valid in the forking process)."""

    stdin: int
    stdout: int
    stderr: int
    errpipe: int  # write end; CLOEXEC, so EOF at a successful execve
    status: int  # write end for the init's final PayloadStatus record
    sync: int  # to the id-map writer: USERNS_READY / MAPS_WRITTEN
    cgroup_join: tuple[int, ...] = ()
    notify: int = -1  # to the supervisor: init passes it the seccomp listener (SCM_RIGHTS)
    netns: int = -1  # a network namespace prepared ahead (the native server's pool only)
    gate: int = -1  # start barrier: the payload says GATE_READY, waits for GATE_OPEN
    # join path (an OCI exec): (fd, CLONE_NEW* flag) of a running container's namespaces,
    # its user namespace first
    join_ns: tuple[tuple[int, int], ...] = ()


@dataclass
class Ctx:
    """State shared by the steps of one child: the plan, fds and the syscall boundary."""

    plan: LaunchPlan
    fds: LaunchFds
    sc: Syscalls
    parent_pid: int
    last_cap: int = 40
    mnt: DetachedMounts = field(default_factory=DetachedMounts)
    lifeline: int = -1  # init: read end of a pipe only the outer writes (EOF: it died)
    # overlayfs takes detached layers (Linux 6.15+): no scratch mount namespace
    detached_layers: bool = False
    # The seccomp listener's handover: the payload's or init's end of their socket pair.
    handover: int = -1
    payload_pid: int = 0  # init: its child, the payload
    listener: int = -1  # init: its copy of the payload's seccomp listener
    # OCI exec: the container's processes share the payload's uid, so it is never
    # made dumpable; its supervisor (root of the host) takes the listener itself.
    joining: bool = False


Step = Callable[[Ctx], None]


def fail(ctx: Ctx, step: str, errno: int, message: str) -> NoReturn:
    """Report a failed step on the errpipe and exit 125 (no recovery in the child)."""
    try:
        ctx.sc.write(ctx.fds.errpipe, encode_failure(step, errno, message))
    finally:
        ctx.sc.exit(EXIT_SPAWN_FAILED)


def run_steps(ctx: Ctx, steps: Sequence[Step]) -> None:
    """Run steps in order; the first failure ends the process.

    Any exception is a failure with its step's name, not only OSError: an
    exception that escaped would end the child with no record (issue 13 item 6).
    """
    for step in steps:
        try:
            step(ctx)
        except Exception as e:  # C1: any exception in a step becomes a failure
            # Not only OSError: resource.setrlimit raises ValueError for EPERM/EINVAL
            # (RLIMIT_NOFILE above fs.nr_open). Escaping here, it ended the process
            # without a word on the errpipe, and EOF there reads as a good execve.
            err = e.errno if isinstance(e, OSError) else 0
            fail(ctx, step.__name__.removeprefix("step_"), err or 0, str(e) or type(e).__name__)


# ---------------------------------------------------------------- outer ----


def step_parent_death(ctx: Ctx) -> None:
    """Die with our parent: PR_SET_PDEATHSIG (cleared by fork and by credential changes)."""
    ctx.sc.prctl(Prctl.PR_SET_PDEATHSIG, signal.SIGKILL)


def step_check_parent(ctx: Ctx) -> None:
    """If the parent died before PDEATHSIG was armed, nobody would kill us: check."""
    if ctx.sc.getppid() != ctx.parent_pid:
        raise OSError(3, "parent exited before the launcher was armed")  # ESRCH


def step_stdio(ctx: Ctx) -> None:
    """The payload's stdin/stdout/stderr become fds 0, 1 and 2 (the received fds closed:
    a copy left here would delay the supervisor's end-of-file on the payload's output)."""
    for target, fd in ((0, ctx.fds.stdin), (1, ctx.fds.stdout), (2, ctx.fds.stderr)):
        if fd != target:
            ctx.sc.dup2(fd, target)
            if fd > 2:
                ctx.sc.close(fd)


def step_new_session(ctx: Ctx) -> None:
    """setsid(): no controlling terminal (TIOCSTI needs one), own process group."""
    ctx.sc.setsid()


def step_drop_groups(ctx: Ctx) -> None:
    """No supplementary groups: they would still count on host-owned files.

    (Rootless, setgroups is not ours to call; the fork server denies it in the
    new user namespace, and the caller's groups are the caller's own.)"""
    if ctx.plan.id_mode != "rootless":
        ctx.sc.setgroups([])


def step_prepare_mounts(ctx: Ctx) -> None:
    """Detached overlay root, /dev, binds and tmpfs, made in the initial user namespace."""
    if not ctx.plan.mounts.rootless:
        ctx.mnt = _prepare_detached(ctx)


def step_time_offsets(ctx: Ctx) -> None:
    """CLOCK_MONOTONIC and CLOCK_BOOTTIME of the run start near zero, not at the host's
    uptime (issue 13 item 8).

    Offsets can be written only before the first process enters the new time
    namespace (our init, forked next; time_namespaces(7)), by a process with
    CAP_SYS_TIME over it (ours: we own its user namespace). The kernel refuses
    a clock that would go negative, so the offset is the whole seconds elapsed.
    """
    if not ctx.plan.unshare_flags & CloneFlag.CLONE_NEWTIME:
        return
    mono = int(time.clock_gettime(time.CLOCK_MONOTONIC))
    boot = int(time.clock_gettime(time.CLOCK_BOOTTIME))
    ctx.sc.write_file(
        "/proc/self/timens_offsets", f"monotonic -{mono} 0\nboottime -{boot} 0\n".encode()
    )


def step_prepare_mounts_in_userns(ctx: Ctx) -> None:
    """Rootless: the same detached mounts, made in the run's own user namespace (once the
    id maps exist: files made there need a mapped owner)."""
    if ctx.plan.mounts.rootless:
        ctx.mnt = _prepare_detached(ctx)


def _prepare_detached(ctx: Ctx) -> DetachedMounts:
    """The detached mounts with no umask: the plan's modes are exact (a caller's umask
    of 077 made the upper layer's root 0700, and the payload could not reach /box);
    the caller's umask is back before the step returns, so the payload inherits it."""
    old = os.umask(0)
    try:
        return prepare_detached(
            ctx.plan.mounts, ctx.sc, (ctx.plan.host_uid, ctx.plan.host_gid), ctx.detached_layers
        )
    finally:
        os.umask(old)


def step_join_netns(ctx: Ctx) -> None:
    """Enter a network namespace prepared ahead (lo up), still as root of the initial
    user namespace; then unshare makes none. Only the native server prepares them
    (off the run's critical path, each for exactly one run): here, never."""
    if ctx.fds.netns >= 0:
        raise OSError(22, "the Python launcher takes no prepared network namespace")  # EINVAL


_NS_FLAGS = {
    "network": CloneFlag.CLONE_NEWNET,
    "ipc": CloneFlag.CLONE_NEWIPC,
    "uts": CloneFlag.CLONE_NEWUTS,
}


def step_join_namespaces(ctx: Ctx) -> None:
    """Join namespaces handed over by path (an engine's network namespace).

    Before ``unshare``: they belong to the initial user namespace, and setns
    needs CAP_SYS_ADMIN over their owner, which only this (outer, host root)
    process has. The payload later holds no capability over them.
    """
    for kind, path in ctx.plan.join_ns:
        fd = ctx.sc.openat(AT_FDCWD, path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ctx.sc.setns(fd, _NS_FLAGS[kind])
        finally:
            ctx.sc.close(fd)


def step_unshare(ctx: Ctx) -> None:
    """All namespaces in one call; the kernel creates the user namespace first."""
    ctx.sc.unshare(CloneFlag(ctx.plan.unshare_flags))


def step_wait_idmaps(ctx: Ctx) -> None:
    """Ask the fork server to write uid_map/gid_map from outside, wait for its answer."""
    ctx.sc.write(ctx.fds.sync, USERNS_READY)
    if ctx.sc.read(ctx.fds.sync, 1) != MAPS_WRITTEN:
        raise OSError(71, "the id maps could not be written")  # EPROTO


OUTER_STEPS: tuple[Step, ...] = (
    step_parent_death,
    step_check_parent,
    step_stdio,
    step_new_session,
    step_drop_groups,
    step_prepare_mounts,
    step_join_netns,
    step_join_namespaces,
    step_unshare,
    step_wait_idmaps,
    step_time_offsets,
    step_prepare_mounts_in_userns,
)

# ----------------------------------------------------------------- init ----


def step_sysctl(ctx: Ctx) -> None:
    """Sysctls of the run's own net/ipc namespaces, through the host's /proc while it is
    still there (net and ipc entries resolve to the writer's namespaces)."""
    for name, value in ctx.plan.sysctl:
        ctx.sc.write_file("/proc/sys/" + name.replace(".", "/"), value.encode())


def step_mounts(ctx: Ctx) -> None:
    """Assemble the root from the detached mounts, mount /proc, pivot_root."""
    if ctx.plan.nested_userns is False:
        # Per user namespace limit, written through the host /proc before it goes away.
        ctx.sc.write_file("/proc/sys/user/max_user_namespaces", b"0")
    attach(ctx.plan.mounts, ctx.mnt, ctx.sc)


def step_hostname(ctx: Ctx) -> None:
    """Hostname of the new UTS namespace."""
    if ctx.plan.unshare_flags & CloneFlag.CLONE_NEWUTS:
        ctx.sc.sethostname(ctx.plan.hostname)


def step_loopback(ctx: Ctx) -> None:
    """Bring up lo in the new network namespace; nothing else exists there."""
    if ctx.plan.unshare_flags & CloneFlag.CLONE_NEWNET:
        ctx.sc.loopback_up()


def step_init_signals(ctx: Ctx) -> None:
    """Default dispositions in PID 1: the kernel then drops every signal sent from inside.

    The init is a fork of the caller's Python process, whose SIGINT/SIGTERM
    handlers would otherwise run (and end the run) if a payload ever got the
    right to signal it; with SIG_DFL the pid namespace's init is unkillable from
    within (pid_namespaces(7)).
    """
    ctx.sc.reset_signals()


def step_init_cmdline(ctx: Ctx) -> None:
    """PID 1's /proc/1/cmdline is readable by the payload: make it say nothing of the host.

    The init is a fork of the caller's process, so it carries the caller's
    argv (with ``sandbox exec``, the whole command line: host paths of
    --stdin, --meta, binds, profiles).
    """
    ctx.sc.set_cmdline(b"sandbox-init")


def step_outer_alive(ctx: Ctx) -> None:
    """PDEATHSIG armed too late (the outer already gone) would never fire: check.

    PID 1 of a new pid namespace sees its parent as pid 0, so the check is an
    end-of-file on a pipe whose only writer is the outer.
    """
    if ctx.lifeline < 0:
        return
    try:
        if ctx.sc.read(ctx.lifeline, 1) == b"":
            raise OSError(3, "the launcher's outer process exited during setup")  # ESRCH
    except BlockingIOError:
        pass  # no data, writer alive
    ctx.sc.close(ctx.lifeline)


INIT_STEPS: tuple[Step, ...] = (
    step_parent_death,
    step_outer_alive,
    step_init_signals,
    step_init_cmdline,
    step_sysctl,
    step_mounts,
    step_hostname,
    step_loopback,
)

# -------------------------------------------------------------- payload ----


def step_signals(ctx: Ctx) -> None:
    """Default dispositions and an empty mask: ignored signals would survive execve."""
    ctx.sc.reset_signals()


def step_apparmor(ctx: Ctx) -> None:
    """Change-on-exec to the run's profile: after the new /proc exists, before NNP/caps/seccomp."""
    if ctx.plan.apparmor_profile is not None:
        apparmor_onexec(ctx.plan.apparmor_profile, ctx.sc.write_file)


def step_no_new_privs(ctx: Ctx) -> None:
    """NNP before Landlock and seccomp: both need it without CAP_SYS_ADMIN (seccomp(2))."""
    if ctx.plan.no_new_privs:
        ctx.sc.prctl(Prctl.PR_SET_NO_NEW_PRIVS, 1)


def step_bounding_set(ctx: Ctx) -> None:
    """Bounding set first: dropping it needs CAP_SETPCAP, which the uid switch may take."""
    if ctx.plan.drop_caps:
        drop_bounding(ctx.sc, ctx.plan.caps_keep, ctx.last_cap)


def step_join_cgroup(ctx: Ctx) -> None:
    """Join the run's leaf through fds opened by the supervisor, just before execve."""
    if not ctx.plan.join_cgroup:
        return
    join_with_fds(ctx.fds.cgroup_join, ctx.sc.write)  # "0": the writer itself, any pid ns
    for fd in ctx.fds.cgroup_join:
        ctx.sc.close(fd)


def step_cgroupns(ctx: Ctx) -> None:
    """A cgroup namespace rooted at the leaf just joined: the payload sees '/'."""
    if ctx.plan.cgroupns:
        ctx.sc.unshare(CloneFlag.CLONE_NEWCGROUP)


def step_ids(ctx: Ctx) -> None:
    """Switch to the sandbox ids (mapped to the run slot's host ids)."""
    ctx.sc.setresgid(ctx.plan.inside_gid, ctx.plan.inside_gid, ctx.plan.inside_gid)
    ctx.sc.setresuid(ctx.plan.inside_uid, ctx.plan.inside_uid, ctx.plan.inside_uid)


PTMX_RDEV = os.makedev(5, 2)  # TTYAUX_MAJOR, 2: a devpts instance's ptmx node


def step_console(ctx: Ctx) -> None:
    """The console (an OCI process.terminal): a pty of the container's own devpts
    becomes the payload's stdio and controlling terminal; its master goes to init.

    After the uid switch, so the pty is the payload's own (a devpts slave
    belongs to its opener), and before Landlock and seccomp, which need not
    allow it. The master is opened beneath nothing the payload touched yet
    (the run's own /dev/pts/ptmx, no symlink followed), checked to be a ptmx,
    sent to init on the handover channel (init passes it to the supervisor,
    step_take_console) and closed here: the payload never holds it. Then a
    session of its own, the slave on 0-2 and as the controlling terminal
    (what runc's console setup gives a container).
    """
    if not ctx.plan.console:
        return
    master = ctx.sc.openat2(
        AT_FDCWD,
        "/dev/pts/ptmx",
        os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
    try:
        st = ctx.sc.fstat(master)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != PTMX_RDEV:
            raise OSError(25, "/dev/pts/ptmx is not a pty multiplexer")  # ENOTTY
        ctx.sc.unlockpt(master)
        slave = ctx.sc.pty_peer(master, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        ctx.sc.send_fd(ctx.handover, master, CONSOLE_TAG)
    finally:
        ctx.sc.close(master)
    ctx.sc.setsid()
    for n in (0, 1, 2):
        ctx.sc.dup2(slave, n)
    ctx.sc.close(slave)
    ctx.sc.set_controlling_tty(0)


def step_capabilities(ctx: Ctx) -> None:
    """Ambient cleared, final sets written (normally all empty)."""
    if ctx.plan.drop_caps:
        # Without no_new_privs, landlock_restrict_self and seccomp need
        # CAP_SYS_ADMIN (landlock(7), seccomp(2)): hold it until execve clears
        # it, as runc loads seccomp before dropping caps when NNP is off.
        hold = 0 if ctx.plan.no_new_privs else 1 << CAP_SYS_ADMIN
        set_final(ctx.sc, ctx.plan.caps_keep, hold)


def step_rlimits(ctx: Ctx) -> None:
    """Limits the payload sets on itself (RLIMIT_CORE=0 always, the profile's others).

    After Landlock, which opens one fd per rule: a profile's small open_files
    (RLIMIT_NOFILE) must limit the payload, not the launcher's set-up (found by
    the differential test: the Python launcher refused open_files = 16 with
    EMFILE, the native one, which opens one rule at a time, did not).
    """
    for r in ctx.plan.rlimits:
        ctx.sc.setrlimit(r.resource, r.soft, r.hard)


def step_landlock(ctx: Ctx) -> None:
    """After every mount and pivot_root (a restricted thread cannot change mounts), after NNP."""
    if ctx.plan.landlock is not None:
        landlock_apply(ctx.plan.landlock, ctx.sc)


def step_close_fds(ctx: Ctx) -> None:
    """No host fd reaches the payload (CVE-2024-21626): all but 0-2 close at execve."""
    ctx.sc.close_range(3, 0xFFFFFFFF, CloseRange.CLOSE_RANGE_CLOEXEC)


def step_chdir(ctx: Ctx) -> None:
    """Working directory inside the new root."""
    ctx.sc.chdir(ctx.plan.workdir)


def step_wait_gate(ctx: Ctx) -> None:
    """Start barrier (an OCI ``create``): everything is set up, execve waits for ``start``.

    Before seccomp, so the filter need not allow the barrier's socket calls;
    after the fds are marked close-on-exec, so the gate itself closes at execve.
    """
    if ctx.fds.gate < 0:
        return
    ctx.sc.write(ctx.fds.gate, GATE_READY)
    if ctx.sc.read(ctx.fds.gate, 1) != GATE_OPEN:
        raise OSError(125, "the container was deleted before it started")  # ECANCELED


def step_exec_ready(ctx: Ctx) -> None:
    """Tell the supervisor every step before seccomp passed: an errpipe EOF without this
    mark is a launcher that died before execve, never a good start (issue 13 item 6).

    Before the filter, which need not allow the write; a failure of seccomp or
    execve still comes after it as a record.
    """
    ctx.sc.write(ctx.fds.errpipe, EXEC_READY)


def step_seccomp(ctx: Ctx) -> None:
    """Last before execve, so the filter need only allow execve (and read/write/exit).

    With a notifying filter somebody must hold the listener before the payload
    runs: a listener nobody holds answers every notification with ENOSYS,
    unrecorded (seccomp_unotify(2)). The holder is our init, a fork away and
    idle, not the supervisor: we write the fd's number to init and wait while
    it copies the fd, passes the copy to the supervisor and acknowledges
    (step_take_listener). Our own fd is CLOEXEC and closes at execve.
    """
    sec = ctx.plan.seccomp
    if sec is None:
        return
    if sec.notify and not ctx.joining:
        # The uid switch made us non-dumpable and our mm belongs to the initial
        # user namespace, where init has no CAP_SYS_PTRACE: without this its
        # pidfd_getfd is refused. execve sets dumpability anew a moment later.
        # Never when joining a running container: its processes have our uid,
        # and a dumpable process is theirs to write through /proc/N/mem (its
        # filter not loaded yet, its listener in hand).
        ctx.sc.prctl(Prctl.PR_SET_DUMPABLE, 1)
    listener = ctx.sc.seccomp_set_filter(sec.bpf, sec.flags)
    if sec.notify:  # from here on only what the filter allows: write, read
        ctx.sc.write(ctx.handover, b"%d" % listener)
        if ctx.sc.read(ctx.handover, 1) != NOTIFY_TAKEN:
            raise OSError(71, "init did not take the seccomp listener")  # EPROTO


PAYLOAD_STEPS: tuple[Step, ...] = (
    step_parent_death,
    step_signals,
    step_apparmor,
    step_no_new_privs,
    step_bounding_set,
    step_join_cgroup,
    step_cgroupns,
    step_ids,
    step_console,
    step_parent_death,
    step_capabilities,
    step_landlock,
    step_rlimits,
    step_close_fds,
    step_chdir,
    step_wait_gate,
    step_exec_ready,
    step_seccomp,
)


# ------------------------------------------------------------- handover ----


def step_take_console(ctx: Ctx) -> None:
    """Init: the console's master from the payload, passed on to the supervisor.

    One message tagged CONSOLE_TAG with one fd, checked to be a ptmx, sent
    on the notify channel and closed: neither init nor the payload keeps it.
    End-of-file: the payload ended before its console and reported why itself.
    """
    if not ctx.plan.console or ctx.handover < 0:
        return
    tag, fd = ctx.sc.recv_fd(ctx.handover)
    if not tag and fd < 0:
        return
    try:
        if tag != CONSOLE_TAG or fd < 0:
            raise OSError(71, "the payload sent no console")  # EPROTO
        st = ctx.sc.fstat(fd)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != PTMX_RDEV:
            raise OSError(25, "the payload's console is not a pty master")  # ENOTTY
        ctx.sc.send_fd(ctx.fds.notify, fd, CONSOLE_TAG)
    except Exception:
        ctx.sc.kill(ctx.payload_pid, signal.SIGKILL)
        ctx.sc.wait_exited(ctx.payload_pid)
        raise
    finally:
        if fd >= 0:
            ctx.sc.close(fd)


def step_take_listener(ctx: Ctx) -> None:
    """Init: copy the payload's seccomp listener, pass it to the supervisor, then ack.

    pidfd_getfd, with init's CAP_SYS_PTRACE in the run's user namespace (as
    root and rootless alike); the copy goes to the supervisor over the notify
    channel (SCM_RIGHTS), and only then may the payload go on to execve. Init
    keeps its copy until the payload has exited, so the listener is held while
    the payload lives whenever the supervisor takes its copy. A failure here is
    reported and ends init before the ack: the payload, waiting for it, never
    reaches execve (it dies with init's pid namespace).
    """
    if ctx.handover < 0:
        return
    if ctx.plan.seccomp is None or not ctx.plan.seccomp.notify:  # the channel was the console's
        ctx.sc.close(ctx.handover)
        ctx.handover = -1
        return
    try:
        data = ctx.sc.read(ctx.handover, 16)
        if data:
            if not data.isdigit() or len(data) > 7:
                raise OSError(71, "the payload sent no listener fd number")  # EPROTO
            if ctx.joining:
                # The payload is not dumpable: the exec's supervisor, root of the
                # host, copies the listener (pidfd_getfd) and says when it has.
                ctx.sc.write(ctx.fds.notify, LISTENER_NUMBER_TAG + data)
                if ctx.sc.read(ctx.fds.notify, 1) != NOTIFY_TAKEN:
                    raise OSError(71, "the exec's supervisor did not take the listener")
            else:
                ctx.listener = ctx.sc.pidfd_getfd(ctx.payload_pid, int(data))
                ctx.sc.send_fd(ctx.fds.notify, ctx.listener)
            ctx.sc.write(ctx.handover, NOTIFY_TAKEN)
        # else: the payload ended before its filter, and reported why itself
    except Exception:
        # The payload, still waiting for the ack, goes before we report: it would
        # report the missing ack too, and two reports make one garbled message.
        ctx.sc.kill(ctx.payload_pid, signal.SIGKILL)
        ctx.sc.wait_exited(ctx.payload_pid)
        raise
    ctx.sc.close(ctx.handover)
    ctx.handover = -1


HANDOVER_STEPS: tuple[Step, ...] = (step_take_console, step_take_listener)


# ------------------------------------------------------------ collector ----


def step_collector_privileges(ctx: Ctx) -> None:
    """No more rights than the payload: no_new_privs (always: this process never
    execs, and Landlock needs it), every capability out of the bounding set, the
    payload's ids, empty capability sets."""
    ctx.sc.prctl(Prctl.PR_SET_NO_NEW_PRIVS, 1)
    drop_bounding(ctx.sc, 0, ctx.last_cap)
    ctx.sc.setresgid(ctx.plan.inside_gid, ctx.plan.inside_gid, ctx.plan.inside_gid)
    ctx.sc.setresuid(ctx.plan.inside_uid, ctx.plan.inside_uid, ctx.plan.inside_uid)
    set_final(ctx.sc, 0, 0)


def step_collect(ctx: Ctx) -> None:
    """Each requested file of /box, or why not, as records on the status pipe.

    Beneath a /box fd with RESOLVE_BENEATH|NO_SYMLINKS|NO_MAGICLINKS|NO_XDEV:
    a symlink anywhere on the path (``d -> /proc/1``, a symlinked directory),
    ``..`` out of /box or a mount crossed refuses the name; regular files only,
    size-capped. /box itself is a directory of the read-only root.
    """
    box = ctx.sc.openat2(
        AT_FDCWD,
        "/box",
        os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
    for name in ctx.plan.collect:
        ctx.sc.write(ctx.fds.status, _collect(ctx, box, name))
    ctx.sc.close(box)


COLLECT_STEPS: tuple[Step, ...] = (
    step_parent_death,
    step_collector_privileges,
    step_landlock,
    step_collect,
)


def step_exec(ctx: Ctx) -> NoReturn:
    """execve the payload with its clean environment; failure goes to the errpipe."""
    try:
        ctx.sc.execve(ctx.plan.exec_path, ctx.plan.argv, dict(ctx.plan.env))
    except OSError as e:
        fail(ctx, "exec", e.errno or 0, f"execve({ctx.plan.exec_path!r}): {e.strerror}")
    except (ValueError, TypeError) as e:  # os.execve's refusals of its arguments (a NUL)
        fail(ctx, "exec", 0, f"execve({ctx.plan.exec_path!r}): {e}")


# ------------------------------------------------------------ processes ----


def outer_main(ctx: Ctx) -> NoReturn:
    """Process 1 of 3: set up, unshare, fork the container's init, relay its status."""
    run_steps(ctx, OUTER_STEPS)
    life_r, life_w = ctx.sc.pipe()
    pid = ctx.sc.fork()
    if pid == 0:
        ctx.sc.close(life_w)
        ctx.lifeline = life_r
        init_main(ctx)
    ctx.sc.close(life_r)  # life_w stays open until the outer exits
    # The monitor keeps nothing of the run's: a pipe writer held here would
    # delay the supervisor's EOF.
    _close(
        ctx,
        *ctx.mnt.all_fds(),
        ctx.fds.errpipe,
        ctx.fds.status,
        ctx.fds.sync,
        ctx.fds.notify,
        ctx.fds.gate,
        0,
        1,
        2,
        *ctx.fds.cgroup_join,
    )
    res = ctx.sc.wait4(pid)
    ctx.sc.exit(_exit_code(res.status))


# ----------------------------------------------------------------- join ----


def step_join_container(ctx: Ctx) -> None:
    """Enter a running container's namespaces (an OCI exec), its user namespace first.

    setns(CLONE_NEWUSER) gives this process every capability *in the container's*
    user namespace (and none outside), which the other setns calls need. Joining
    the pid namespace places only our children in it, hence the fork that follows.
    """
    for fd, flag in ctx.fds.join_ns:
        ctx.sc.setns(fd, CloneFlag(flag))
        ctx.sc.close(fd)


JOIN_STEPS: tuple[Step, ...] = (
    step_parent_death,
    step_check_parent,
    step_stdio,
    step_new_session,
    step_drop_groups,
    step_join_container,
)


def _fork_payload(ctx: Ctx) -> tuple[int, int]:
    """Fork the payload (PAYLOAD_STEPS, then execve); its pid and our end of the
    handover channel (-1 without a seccomp listener), whose other end is closed."""
    ours = theirs = -1
    if ctx.plan.console or (ctx.plan.seccomp is not None and ctx.plan.seccomp.notify):
        ours, theirs = ctx.sc.socketpair()
    pid = ctx.sc.fork()
    if pid == 0:
        _close(ctx, ours)
        ctx.handover = theirs
        run_steps(ctx, PAYLOAD_STEPS)
        step_exec(ctx)
    _close(ctx, theirs)
    return pid, ours


def join_main(ctx: Ctx) -> NoReturn:
    """A process joining a running container (OCI exec): JOIN_STEPS, then the payload's
    own PAYLOAD_STEPS in a child (every layer, as for the container's first process);
    this process reaps it and reports its status, as the container's init does."""
    run_steps(ctx, JOIN_STEPS)
    ctx.joining = True
    pid, ours = _fork_payload(ctx)
    _close(ctx, ctx.fds.gate, 0, 1, 2, *ctx.fds.cgroup_join)
    # The payload's listener, as the container's init takes it (setns into the
    # container's user namespace gave us CAP_SYS_PTRACE there).
    ctx.handover, ctx.payload_pid = ours, pid
    run_steps(ctx, HANDOVER_STEPS)
    _close(ctx, ctx.fds.errpipe, ctx.fds.notify)
    ctx.sc.wait_exited(pid)
    rchar, wchar = _io_counters(ctx, pid)
    res = ctx.sc.wait4(pid)
    # Ours goes with the payload; what it left runs on in the container, its
    # denials seen as long as the exec's supervisor holds its copy (as before).
    _close(ctx, ctx.listener)
    ctx.listener = -1
    status = PayloadStatus(
        res.status, res.utime, res.stime, res.maxrss_kib, res.nvcsw, res.nivcsw, rchar, wchar
    )
    ctx.sc.write(ctx.fds.status, status.encode())
    ctx.sc.exit(_exit_code(res.status))


def init_main(ctx: Ctx) -> NoReturn:
    """Process 2 of 3: PID 1 of the container; builds the root, forks and reaps."""
    ctx.parent_pid = 0
    run_steps(ctx, INIT_STEPS)
    pid, ours = _fork_payload(ctx)
    _close(ctx, ctx.fds.sync, ctx.fds.gate, 0, 1, 2, *ctx.fds.cgroup_join)
    ctx.handover, ctx.payload_pid = ours, pid
    # The errpipe stays open through the handover: a failure there is this run's
    # failure, and its end-of-file then means execve and listener both.
    run_steps(ctx, HANDOVER_STEPS)
    _close(ctx, ctx.fds.errpipe, ctx.fds.notify)
    # The payload's exit, then its I/O counters while it is still a zombie, then reap.
    ctx.sc.wait_exited(pid)
    rchar, wchar = _io_counters(ctx, pid)
    res = ctx.sc.wait4(pid)
    if ctx.plan.unshare_flags & CloneFlag.CLONE_NEWPID:
        # As PID 1 of the run's own pid namespace, kill(-1) reaches exactly the run's
        # leftovers (never without that namespace: it would reach the host's processes).
        try:
            ctx.sc.kill(-1, 9)
        except ProcessLookupError:
            pass  # ESRCH: nothing was left
    # No task under the filter runs user code any more (the payload exited, what it
    # left is SIGKILLed): our copy of the listener may go, and the collector must
    # not inherit it.
    _close(ctx, ctx.listener)
    ctx.listener = -1
    status = PayloadStatus(
        res.status, res.utime, res.stime, res.maxrss_kib, res.nvcsw, res.nivcsw, rchar, wchar
    )
    ctx.sc.write(ctx.fds.status, status.encode())
    if ctx.plan.collect:
        # Read by a process with no more rights than the payload had, never by
        # this one (full capabilities in its namespaces, no Landlock); it must
        # not inherit the upper, so that goes first here.
        _close(ctx, ctx.mnt.upper)
        ctx.mnt.upper = -1
        pid = ctx.sc.fork()
        if pid == 0:
            collect_main(ctx)
        ctx.sc.wait4(pid)
    # End-of-file for the supervisor first (it waits for nothing else of ours),
    # then the upper: closing its last fd unmounts it, which waits for an
    # expedited RCU grace period (sandbox/fs/mounts.py).
    _close(ctx, ctx.fds.status, ctx.mnt.upper)
    ctx.sc.exit(_exit_code(res.status))


def collect_main(ctx: Ctx) -> NoReturn:
    """Process 4: the collector (see the module docstring); every name gets a record."""
    for step in COLLECT_STEPS:
        try:
            step(ctx)
        except OSError:
            # Nobody reads an errpipe now: each name says the collector failed.
            for name in ctx.plan.collect:
                ctx.sc.write(ctx.fds.status, encode_file(name, COLLECTOR_FAILED))
            ctx.sc.exit(EXIT_SPAWN_FAILED)
    ctx.sc.exit(0)


def _close(ctx: Ctx, *fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            ctx.sc.close(fd)


def _io_counters(ctx: Ctx, pid: int) -> tuple[int, int]:
    """rchar/wchar of the (zombie) payload from /proc/PID/io; -1 when unreadable."""
    try:
        fd = ctx.sc.openat(AT_FDCWD, f"/proc/{pid}/io", os.O_RDONLY | os.O_CLOEXEC)
        try:
            text = ctx.sc.read(fd, 4096).decode()
        finally:
            ctx.sc.close(fd)
        fields = dict(line.split(": ") for line in text.splitlines() if ": " in line)
        return int(fields.get("rchar", -1)), int(fields.get("wchar", -1))
    except (OSError, ValueError):
        return -1, -1


def _collect(ctx: Ctx, box: int, name: str) -> bytes:
    """One file beneath /box for the supervisor: contents, or the reason code."""
    try:
        fd = ctx.sc.openat2(
            box,
            name,
            os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        )
    except OSError as e:
        return encode_file(name, collect_code(e.errno or 0))
    try:
        st = ctx.sc.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return encode_file(name, NOT_REGULAR)
        if st.st_size > ctx.plan.collect_limit:
            return encode_file(name, TOO_BIG)
        data = b""
        while len(data) <= ctx.plan.collect_limit:
            chunk = ctx.sc.read(fd, 1 << 20)
            if not chunk:
                break
            data += chunk
        if len(data) > ctx.plan.collect_limit:
            return encode_file(name, TOO_BIG)
        return encode_file(name, len(data), data)
    except OSError as e:
        return encode_file(name, collect_code(e.errno or 0))
    finally:
        ctx.sc.close(fd)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 255
