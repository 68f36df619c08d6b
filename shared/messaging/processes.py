"""Local processes the project starts itself (brokers, services in the suites): free loopback
ports to give them, and ending them with a signal, then SIGKILL."""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child before exec: Linux sends it ``sig`` when the process that started it dies,
    so a killed launcher never leaves orphans behind (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)


# Ports handed out for listeners that bind a moment later (another process, or an API after
# its start-up) are chosen below the kernel's ephemeral range: an outgoing connection of any
# process on the machine can take an ephemeral port between the check and the bind.
_LISTEN_PORTS = (20000, 32000)


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind ``port`` on ``host`` now."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port_block(
    count: int = 1, *, host: str = "127.0.0.1", taken: set[int] | None = None
) -> int:
    """The first of ``count`` consecutive unused TCP ports on ``host``, below the ephemeral
    range, none of them in ``taken`` (which receives them)."""
    low, high = _LISTEN_PORTS
    high = min(high, _ephemeral_low()) - count
    taken = taken if taken is not None else set()
    rng = random.Random()  # noqa: S311 - a port number, not a secret
    for _ in range(1000):
        base = rng.randrange(low, high)
        ports = set(range(base, base + count))
        if not ports & taken and all(bindable(p, host) for p in ports):
            taken |= ports
            return base
    raise RuntimeError(f"no {count} consecutive free ports in {low}-{high}")


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (below the ephemeral range, see above)."""
    return free_port_block(1, host=host)


def end_process(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Ask ``process`` to end with ``sig``; SIGKILL it if it has not within ``timeout``
    seconds. Returns once it is reaped."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process``, as in a crash, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        socket.create_connection((host, port), timeout).close()
        return True
    except OSError:
        return False
