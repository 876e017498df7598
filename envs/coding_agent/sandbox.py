"""Run untrusted Python (a policy's code) in a subprocess with limits.

What the sandbox enforces, each tested in tests/test_coding_agent.py with an escape attempt:

* **time**: wall-clock ``timeout`` (the whole process group is killed) and ``RLIMIT_CPU``;
* **memory**: ``RLIMIT_AS`` (``memory_mb``), so an allocation bomb fails with MemoryError;
* **processes**: ``RLIMIT_NPROC`` = 0 new processes for the child, and an audit hook refusing
  ``os.fork``/``os.system``/``subprocess``/``os.exec*``/``os.posix_spawn``/``os.kill``;
* **files**: a fresh temporary working dir per run, ``RLIMIT_FSIZE`` (1 MiB per file); the audit
  hook refuses opening, removing or renaming anything outside that dir except reading the Python
  installation itself (imports);
* **network**: the audit hook refuses creating sockets (``socket.__new__``, ``socket.connect``);
* **native code**: the audit hook refuses ``ctypes`` loading and ``sys.addaudithook`` removal is
  impossible by design (hooks cannot be removed);
* **output**: stdout and stderr are cut to ``max_output`` characters;
* **environment**: ``python -I`` (no user site, no PYTHON* variables), an empty environment
  apart from ``PATH``-less basics, stdin closed.

Why our own and not a library: the maintained sandboxes (nsjail, gVisor, Firecracker, Docker)
need root or a daemon, and this must run unprivileged on a laptop and in CI. Python audit hooks
are not a security boundary against a determined attacker (they are the limits a small model's
accidental or opportunistic code runs into); for untrusted models at scale run the whole worker
in a container. Documented in docs/coding_agent.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: runs inside the child before the user's code: installs the audit hook, then runs ``entry``
_BOOTSTRAP = r"""
import os, sys
_ROOT = os.path.realpath(os.getcwd())
_READABLE = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                   sys.base_exec_prefix, os.path.dirname(os.__file__))})
_BLOCKED = ("os.system", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn",
            "os.kill", "os.killpg", "subprocess.Popen", "pty.spawn", "ctypes.dlopen",
            "ctypes.dlsym", "ctypes.cdata", "socket.__new__", "socket.connect", "socket.bind",
            "socket.getaddrinfo", "os.chdir", "os.chroot", "os.setuid",
            "shutil.rmtree", "os.putenv", "os.unsetenv", "webbrowser.open", "urllib.Request",
            "resource.setrlimit", "os.symlink", "os.link", "os.truncate")
_PATH_EVENTS = {"os.remove": 0, "os.rmdir": 0, "os.rename": (0, 1), "os.mkdir": 0,
                "os.chmod": 0, "os.utime": 0}
_LIST_EVENTS = ("os.listdir", "os.scandir")

def _inside(path):
    try:
        real = os.path.realpath(os.fsdecode(path) if not isinstance(path, int) else "/proc/self/fd")
    except Exception:
        return False
    return real == _ROOT or real.startswith(_ROOT + os.sep)

def _readable(path):
    if isinstance(path, int):
        return True
    real = os.path.realpath(os.fsdecode(path))
    return _inside(real) or any(real == r or real.startswith(r + os.sep) for r in _READABLE)

def _hook(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode = args[0], args[1] if len(args) > 1 else "r"
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writing = writing or bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if path is None:
            return
        if (writing and not _inside(path)) or (not writing and not _readable(path)):
            raise PermissionError(f"sandbox: opening {path!r} is not allowed")
    elif event in _LIST_EVENTS:
        if args and args[0] is not None and not _readable(args[0]):
            raise PermissionError(f"sandbox: listing {args[0]!r} is not allowed")
    elif event in _PATH_EVENTS:
        where = _PATH_EVENTS[event]
        for k in (where if isinstance(where, tuple) else (where,)):
            if k < len(args) and args[k] is not None and not _inside(args[k]):
                raise PermissionError(f"sandbox: {event} outside the work dir is not allowed")

sys.addaudithook(_hook)
del _hook
_entry = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, _ROOT)
import runpy
runpy.run_path(_entry, run_name="__main__")
"""


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int | None  # None: killed (timeout)
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def _limits(memory_mb: int, cpu_seconds: int) -> None:
    """In the child, before exec: the resource limits (POSIX)."""
    import resource

    as_bytes = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # no new processes: counts the user's processes, so with 0 every fork fails
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def run_python(
    files: dict[str, str],
    entry: str,
    *,
    timeout: float = 5.0,
    memory_mb: int = 512,
    max_output: int = 4000,
) -> SandboxResult:
    """Write ``files`` into a fresh temporary dir and run ``entry`` (one of them) there."""
    with tempfile.TemporaryDirectory(prefix="intentgym-sandbox-") as tmp:
        for name, text in files.items():
            path = Path(tmp, name)
            if path.resolve().parent != Path(tmp).resolve():
                raise ValueError(f"sandbox file names must be plain names, got {name!r}")
            path.write_text(text)
        cmd = [sys.executable, "-I", "-c", _BOOTSTRAP, entry]
        env = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        proc = subprocess.Popen(
            cmd,
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills everything it made
            preexec_fn=lambda: _limits(memory_mb, max(1, int(timeout) + 1)),
        )
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        code = None if timed_out else proc.returncode
        return SandboxResult(
            code,
            out.decode(errors="replace")[:max_output],
            err.decode(errors="replace")[-max_output:],
            timed_out,
        )
