"""`ecas serve --workers N` on Linux: N worker processes, each listening on a socket of its own on
the same port (SO_REUSEPORT), so the kernel spreads new connections evenly over the workers.

With uvicorn's one shared socket, the worker that wakes first accepts every connection waiting at
that moment. Keep-alive clients that connect at once (a reverse proxy's upstream pool, the load
bench) could all land on one worker, which can use only one core (the GIL), while the other idled:
measured with 16 connections on 2 cores, issuance ran at 42-58 licences/s when that happened, about
80-100 when the connections were split.

The parent binds the sockets and keeps them, so a connection that arrives while a worker restarts
waits in its socket's queue for the replacement. A worker that dies is replaced; one that fails
soon after it started stops the service (it would fail the same way again). SIGINT and SIGTERM stop
the workers gracefully, then the parent.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn

from cert_authority.errors import ConfigError

log = logging.getLogger("ecas.serve")
APP = "cert_authority.http.app:create_app"
SHUTDOWN_SECONDS = 30  # a worker still running after this is killed
STARTUP_SECONDS = 30  # a worker that fails (exit code > 0) this soon failed to start
CHECK_SECONDS = 0.5
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def available() -> bool:
    """Per-worker sockets need SO_REUSEPORT with Linux's even spreading of connections."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def serve(workers: int, host: str, port: int, options: dict[str, Any]) -> None:
    """Run `workers` processes serving the app on host:port until SIGINT or SIGTERM."""
    sockets = [_listening(host, port)]
    port = sockets[0].getsockname()[1]  # the one chosen for port 0
    sockets += [_listening(host, port) for _ in range(workers - 1)]
    stop, failed = threading.Event(), None
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    processes = [_Worker(sock, options) for sock in sockets]
    log.info("serving on %s:%d with %d workers (pids %s)", host, port, workers, [w.process.pid for w in processes])
    try:
        while not stop.wait(CHECK_SECONDS):
            for index, worker in enumerate(processes):
                if worker.process.is_alive():
                    continue
                code = worker.process.exitcode
                if code is not None and code > 0 and time.monotonic() - worker.started < STARTUP_SECONDS:
                    failed = code
                    stop.set()
                    break
                log.warning("worker %s exited (code %s); starting another", worker.process.pid, code)
                processes[index] = _Worker(sockets[index], options)
    finally:
        _stop_all([worker.process for worker in processes])
        for sock in sockets:
            sock.close()
    if failed is not None:
        raise ConfigError(f"工作进程启动失败（退出码 {failed}），服务已停止：原因见上方日志")


class _Worker:
    def __init__(self, sock: socket.socket, options: dict[str, Any]) -> None:
        self.process = multiprocessing.get_context("spawn").Process(target=_run, args=(sock, options))
        self.process.start()
        self.started = time.monotonic()


def _listening(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _run(sock: socket.socket, options: dict[str, Any]) -> None:
    # A spawned worker starts with logging unconfigured (uvicorn's config sets only its own
    # loggers): ECAS's INFO lines were dropped and its warnings printed without a time.
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # uvicorn stops gracefully on SIGTERM (from the parent) and SIGINT (Ctrl-C reaches the group).
    uvicorn.Server(uvicorn.Config(APP, factory=True, **options)).run(sockets=[sock])


def _stop_all(processes: list[SpawnProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(SHUTDOWN_SECONDS)
        if process.is_alive():
            log.warning("worker %s did not stop within %d s; killing it", process.pid, SHUTDOWN_SECONDS)
            process.kill()
            process.join()
