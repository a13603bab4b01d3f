"""The sandbox layers a template and its workers put themselves in (contract.md, "Sandbox").

Layers, each reported by name with whether it is active:

1. ``fds``, ``pdeathsig``, ``no_new_privs``: nothing inherited but the runtime's socket; the
   process dies with its parent; no privilege can be gained by exec (which is refused anyway).
2. ``rlimits``: CPU seconds, address space, processes, open files, file size, no core dumps.
3. ``namespaces``: a fresh network namespace (no interface up, loopback included) and a PID
   namespace (nothing outside it can be seen or signalled).
4. ``uid``: an unprivileged uid/gid of its own; as root by dropping to it, otherwise through
   a user namespace (and all capabilities dropped).
5. ``landlock``: read-only access to the Python installation, the shared libraries and the
   artifact, read-write to the worker's own directory, no TCP, signals and abstract unix
   sockets scoped to the sandbox (ABI >= 6).
6. ``seccomp``: no ``socket()``, ``execve``, ``ptrace``, mount/unshare/keyctl/bpf and friends;
   in workers also no new processes and no ``kill`` outside their own process.

Landlock misses UDP and pathname unix sockets and seccomp alone misses files, so every layer is
kept. The kernel interfaces are called directly through ctypes (Landlock) and libseccomp
(``pyseccomp``). Functions here raise :class:`SandboxUnavailable` naming what failed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import resource
import signal
import site
import sys
import sysconfig

try:  # loaded now: it looks for libseccomp with ctypes.util, which needs what the sandbox denies
    import pyseccomp as _seccomp
except (ImportError, OSError) as _exc:  # the missing layer is reported, not hidden
    _seccomp, _SECCOMP_ERROR = None, f"{type(_exc).__name__}: {_exc}"

LAYERS = ("fds", "pdeathsig", "no_new_privs", "rlimits", "namespaces", "disk", "uid", "landlock", "seccomp")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
CLONE_NEWIPC = 0x08000000
CLONE_THREAD = 0x00010000

# Landlock (include/uapi/linux/landlock.h)
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
FS_MAKE_SYM, FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
MIN_LANDLOCK_ABI = 4  # TCP rules; scopes (ABI 6) are used when present


class SandboxUnavailable(Exception):
    """A layer could not be put in place; the message says which and why."""


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise SandboxUnavailable(f"{what}: {os.strerror(err)} (errno {errno.errorcode.get(err, err)})")
    return result


def _prctl(option: int, arg: int, what: str) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), what)


# -- layer 1 -------------------------------------------------------------------------------

def close_fds(keep: set[int]) -> None:
    """Close every descriptor but stdin/stdout/stderr and ``keep``."""
    try:
        open_fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def die_with_parent() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "prctl(PR_SET_PDEATHSIG)")


def no_new_privs() -> None:
    _prctl(PR_SET_NO_NEW_PRIVS, 1, "prctl(PR_SET_NO_NEW_PRIVS)")


# -- layer 2 -------------------------------------------------------------------------------

def set_rlimits(address_space: int | None, cpu_seconds: int | None, processes: int, open_files: int,
                file_size: int) -> None:
    limits = [(resource.RLIMIT_NPROC, processes), (resource.RLIMIT_NOFILE, open_files),
              (resource.RLIMIT_FSIZE, file_size), (resource.RLIMIT_CORE, 0)]
    if address_space is not None:
        limits.append((resource.RLIMIT_AS, address_space))
    if cpu_seconds is not None:
        limits.append((resource.RLIMIT_CPU, cpu_seconds))
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError) as exc:
            raise SandboxUnavailable(f"setrlimit({which}): {exc}") from None


def address_space_in_use() -> int:
    """Virtual memory of this process now (bytes), the base a memory limit is added to."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


# -- layers 3 and 4 --------------------------------------------------------------------------

def enter_namespaces(as_root: bool) -> None:
    """New network, PID, IPC and mount namespaces (and a user namespace when not root).

    IPC: SysV shared memory, message queues and semaphores (and POSIX message queues) are the
    host's otherwise: a per-call worker would read what an earlier call left, two services
    could talk, and segments would outlive the template, outside ``memory_mb``.

    Must run while the process has a single thread (the kernel refuses a user namespace
    otherwise); the *next* child becomes PID 1 of the new PID namespace.
    """
    flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNS  # mounts: for private_disk
    uid, gid = os.getuid(), os.getgid()
    if not as_root:
        flags |= CLONE_NEWUSER
    _check(_libc.unshare(flags), "unshare(network, pid, ipc, mount" + ("" if as_root else ", user") + " namespaces)")
    if not as_root:
        # map our own uid/gid to the same numbers inside (the only mapping allowed unprivileged)
        for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                           ("/proc/self/gid_map", f"{gid} {gid} 1")):
            try:
                with open(path, "w") as f:
                    f.write(text)
            except OSError as exc:
                raise SandboxUnavailable(f"writing {path}: {exc}") from None


MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000


def private_disk(path: str, size_mb: int, owner: int | None) -> None:
    """A tmpfs of ``size_mb`` over ``path``, in this process's own mount namespace (entered by
    enter_namespaces): the workers' folders live there, so a script that writes until the disk is
    full fills only its template's tmpfs, never the server's disk (whose memory-mapped metrics
    files made every web process die of SIGBUS). It ends with the namespace, whatever its files'
    modes. ``owner``: the uid (and gid) the template will drop to, as root."""
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    options = f"size={int(size_mb)}m,mode=0700" + (f",uid={owner},gid={owner}" if owner is not None else "")
    _check(_libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()),
           f"mount tmpfs on {path}")


# SysV IPC ctl commands (linux/ipc.h, shm.h, msg.h, sem.h): INFO (highest index in use),
# STAT_ANY (index -> id, whatever the object's mode; Linux 4.17+), STAT (the same, mode-checked)
IPC_RMID = 0
_IPC_COMMANDS = {"shm": (14, 15, 13), "msg": (12, 13, 11), "sem": (19, 20, 18)}


def _ipc_ctl(kind: str, ident: int, cmd: int, buf) -> int:
    if kind == "sem":
        return _libc.semctl(ident, 0, cmd, buf)
    return (_libc.shmctl if kind == "shm" else _libc.msgctl)(ident, cmd, buf)


def remove_ipc_objects() -> int:
    """Remove every SysV IPC object of this IPC namespace (a template's own, since it has one):
    what a per-call worker left must not be seen by the next. Returns how many were removed."""
    buf = ctypes.create_string_buffer(512)  # larger than any *_ds / *info structure
    removed = 0
    for kind, (info, stat_any, stat) in _IPC_COMMANDS.items():
        for index in range(_ipc_ctl(kind, 0, info, buf) + 1):
            ident = _ipc_ctl(kind, index, stat_any, buf)
            if ident < 0:
                ident = _ipc_ctl(kind, index, stat, buf)
            if ident >= 0 and _ipc_ctl(kind, ident, IPC_RMID, None) == 0:
                removed += 1
    return removed


def drop_privileges(uid: int, gid: int) -> None:
    """As root: become ``uid``/``gid`` for good (which clears every capability)."""
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise SandboxUnavailable(f"dropping to uid {uid}: {exc}") from None
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SandboxUnavailable("still root after setresuid")


def check_python_readable(uid: int) -> None:
    """The dropped uid must still read the standard library, site-packages and this package
    (lazy imports)."""
    for path in [sysconfig.get_paths().get(key) for key in ("stdlib", "purelib", "platlib")] + [PACKAGE_DIR]:
        if path and not os.access(path, os.R_OK | os.X_OK):
            raise SandboxUnavailable(
                f"uid {uid} cannot read the Python installation at {path}: install scorepub with a Python "
                "that other users can read (not one inside a private home folder such as /root)")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Clear every capability (the ones a new user namespace grants inside it)."""
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset(none)")


# -- layer 5: Landlock -------------------------------------------------------------------------

class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0 when Landlock is not available)."""
    abi = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(0, abi)


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # EXECUTE .. MAKE_SYM (ABI 1)
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def landlock_restrict(read_only: list[str], read_write: list[str]) -> int:
    """Allow only these paths (and no TCP at all); returns the ABI used."""
    abi = landlock_abi()
    if abi < MIN_LANDLOCK_ABI:
        raise SandboxUnavailable(f"Landlock ABI {abi} < {MIN_LANDLOCK_ABI} (or Landlock is disabled)")
    handled = _fs_rights(abi)
    attr = _RulesetAttr(handled, NET_BIND_TCP | NET_CONNECT_TCP,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16
    ruleset = _check(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                                   ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        for paths, rights in ((read_only, _READ & handled), (read_write, handled)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a path this machine does not have
                try:
                    allowed = rights if os.path.isdir(path) else rights & _FILE_RIGHTS
                    rule = _PathBeneathAttr(allowed, fd)
                    _check(_libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                                         ctypes.byref(rule), ctypes.c_uint32(0)), f"landlock_add_rule({path})")
                finally:
                    os.close(fd)
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))  # this package, wherever scorepub is installed


def python_read_paths() -> list[str]:
    """What a script may read: the interpreter (the one running, maybe a version's own
    environment), its libraries, this package (a worker imports from it lazily), shared
    libraries, time zones."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             PACKAGE_DIR}
    paths.update(v for k, v in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib", "purelib", "platlib"))
    paths.update(site.getsitepackages())
    paths.update(["/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/usr/share/zoneinfo",
                  "/etc/ld.so.cache", "/etc/localtime", "/dev/null", "/dev/zero", "/dev/urandom",
                  "/sys/devices/system/cpu"])
    return sorted(p for p in paths if p and os.path.exists(p))


# -- layer 6: seccomp ----------------------------------------------------------------------------

_ALWAYS_DENIED = (
    "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root",
    "chroot", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "open_by_handle_at", "name_to_handle_at", "fanotify_init", "move_mount", "open_tree",
    "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr", "socket", "io_uring_setup", "personality",
    # anonymous memory files are not counted by RLIMIT_AS: a 256 MB service held 1 GiB in them
    "memfd_create",
)
# the worker's filter adds these (seccomp_worker)
_WORKER_DENIED = ("socketpair", "fork", "vfork", "tkill", "pidfd_send_signal", "pidfd_open", "rt_sigqueueinfo",
                  "rt_tgsigqueueinfo")
_WORKER_THREADS_ONLY = "clone"  # allowed with CLONE_THREAD only
_WORKER_ENOSYS = "clone3"  # glibc falls back to clone for threads
_WORKER_SELF_ONLY = ("kill", "tgkill")  # allowed aimed at the worker itself only

# Every name above must be one libseccomp knows: it answers __NR_SCMP_ERROR (-1) for a name it does
# not know, and rule creation then fails with the same EINVAL as for other faults, so names are
# resolved and checked first: a misspelled one fails the start-up probe. A name libseccomp knows but this architecture lacks resolves to a
# negative pseudo number; a rule for it is accepted and does nothing. That is expected only for:
MAY_BE_ABSENT = {
    "fork": "not on arm64 or riscv64 (clone only)",
    "vfork": "not on arm64, riscv64 or mips",
    "kexec_file_load": "not on 32-bit x86 or mips",
}
# and for the calls some architectures multiplex through socketcall (32-bit x86, ppc, s390): there
# the pseudo number stands for socketcall with that call's argument, which libseccomp filters.
MULTIPLEXED = frozenset({"socket", "socketpair"})


def seccomp_names() -> tuple[str, ...]:
    """Every syscall name the template's and the workers' filters use."""
    return (_ALWAYS_DENIED + _WORKER_DENIED + (_WORKER_THREADS_ONLY, _WORKER_ENOSYS) + _WORKER_SELF_ONLY)


def _libseccomp():
    if _seccomp is None:
        raise SandboxUnavailable(f"seccomp: libseccomp is not usable ({_SECCOMP_ERROR}); "
                                 "install the pyseccomp package and Debian's libseccomp2")
    return _seccomp


def resolve_syscalls(names, arch: int | None = None) -> dict[str, int]:
    """Each name's number on ``arch`` (the native one by default); a name libseccomp does not
    know (misspelled), or one this architecture lacks that is not expected to, is refused."""
    seccomp = _libseccomp()
    arch = seccomp.system_arch() if arch is None else arch
    numbers = {}
    for name in names:
        number = seccomp.resolve_syscall(arch, name)
        if number == -1:  # __NR_SCMP_ERROR
            raise SandboxUnavailable(f"seccomp: unknown syscall name {name!r} in the sandbox's rules "
                                     "(misspelled, or newer than this libseccomp)")
        if number < 0 and name not in MAY_BE_ABSENT and name not in MULTIPLEXED:
            raise SandboxUnavailable(f"seccomp: syscall {name!r} does not exist on this architecture "
                                     f"(libseccomp arch {arch:#x}) and is not one expected to be absent")
        numbers[name] = number
    return numbers


def _filter(extra_denied=(), rules=None):
    seccomp = _libseccomp()
    nr = resolve_syscalls(seccomp_names())  # all of them, the workers' too: a bad name fails the probe
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in _ALWAYS_DENIED + tuple(extra_denied):
        f.add_rule(seccomp.ERRNO(errno.EPERM), nr[name])
    for rule in rules or ():
        rule(f, seccomp, nr)
    return f


def seccomp_template() -> None:
    """The template's filter: no sockets, exec, tracing or namespace games (fork is allowed)."""
    try:
        f = _filter()
        f.load()
    except SandboxUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - libseccomp missing or the kernel refusing
        raise SandboxUnavailable(f"seccomp: {type(exc).__name__}: {exc}") from None


def _worker_filter(pid: int):
    if pid <= 0:
        raise SandboxUnavailable(f"seccomp (worker): bad pid {pid}")

    def processes(f, seccomp, nr):
        f.add_rule(seccomp.ERRNO(errno.EPERM), nr[_WORKER_THREADS_ONLY],
                   seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), nr[_WORKER_ENOSYS])

    def signals(f, seccomp, nr):
        # kill/tgkill only aimed at this very process (libseccomp takes one comparison per
        # argument and rule, hence "above" and "below" as two rules; negative pids are huge
        # as unsigned numbers, so "above" also covers process groups and -1)
        for call in _WORKER_SELF_ONLY:
            f.add_rule(seccomp.ERRNO(errno.EPERM), nr[call], seccomp.Arg(0, seccomp.GT, pid))
            f.add_rule(seccomp.ERRNO(errno.EPERM), nr[call], seccomp.Arg(0, seccomp.LT, pid))

    return _filter(_WORKER_DENIED, (processes, signals))


def seccomp_worker(pid: int) -> None:
    """A worker's extra filter: no new processes (threads are fine), no signals to others."""
    try:
        f = _worker_filter(pid)
        f.load()
    except SandboxUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SandboxUnavailable(f"seccomp (worker): {type(exc).__name__}: {exc}") from None
