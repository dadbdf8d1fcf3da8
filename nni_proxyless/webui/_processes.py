"""The processes a web UI starts (NNI's manager, its tuner, the relay trials): finding, checking, ending them."""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import psutil

__all__ = ['port_in_use', 'stdin_withheld', 'find_manager', 'alive', 'family', 'kill_all']


def port_in_use(port: int) -> str | None:
    """Why ``port`` cannot be listened on as NNI's manager (Node.js) will (all interfaces, IPv4 and IPv6,
    SO_REUSEADDR), or ``None`` when it is free."""
    dualstack = socket.has_dualstack_ipv6()
    try:
        probe = socket.create_server(('', port), family=socket.AF_INET6 if dualstack else socket.AF_INET,
                                     dualstack_ipv6=dualstack)
    except OSError as exc:
        return exc.strerror or str(exc)
    probe.close()
    return None


@contextlib.contextmanager
def stdin_withheld() -> Iterator[None]:
    """Give the processes started meanwhile /dev/null as standard input.

    NNI's launcher lets its manager (Node.js) inherit our stdin, and Node.js makes that shared pipe or
    terminal non-blocking: ``input()`` or ``pdb`` in this process would fail while the web UI runs.
    """
    try:
        saved = os.dup(0)
    except OSError:  # no stdin to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(devnull)


def find_manager(experiment_id: str) -> psutil.Process | None:
    """The NNI manager (node) process this process started for ``experiment_id``."""
    for child in psutil.Process().children():
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if '--experiment-id' in cmdline and experiment_id in cmdline:
            return child
    return None


def alive(process: psutil.Process | None) -> bool:
    """Whether ``process`` runs (a zombie does not)."""
    try:
        return process is not None and process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def family(process: psutil.Process | None) -> list[psutil.Process]:
    """``process`` and all its descendants."""
    if process is None:
        return []
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def kill_all(processes: list[psutil.Process]) -> None:
    """Terminate ``processes``, kill those still alive after 5 s, and reap them."""
    running = [p for p in processes if p.is_running()]  # zombies included: waiting reaps them
    for process in running:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, running = psutil.wait_procs(running, timeout=5)
    for process in running:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(running, timeout=5)
