"""Shared fixtures: a real sightline server started the way a user starts it.

``sightline serve`` runs as a subprocess with embedded Redis and real Celery worker
processes; tests talk to it over HTTP and Socket.IO only. The visual model is a tiny,
randomly initialised CLIP built by the test and registered with ``sightline models import``
(there are no real CLIP weights offline; the code path is the same).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import socketio

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
BIN = Path(sys.executable).parent
TMP_ROOT = ROOT / "tests" / ".tmp"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sightline(*args: str, env: dict, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sightline"), *args], env=env, capture_output=True, text=True,
                          check=check, timeout=timeout)


class Server:
    """A running ``sightline serve`` and what a client needs to talk to it."""

    def __init__(self, home: Path, port: int, env: dict, process: subprocess.Popen, log_path: Path):
        self.home, self.port, self.env, self.process, self.log_path = home, port, env, process, log_path
        self.base = f"http://127.0.0.1:{port}"
        self.api = f"{self.base}/api/v1"
        self.pro_key = sightline("keys", "create", "--tier", "pro", "--label", "tests", env=env).stdout.split()[-1]
        self.basic_key = sightline("keys", "create", "--tier", "basic", env=env).stdout.split()[-1]

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def redis_url(self) -> str:
        match = re.search(r"embedded Redis at (redis://\S+)", self.log)
        return match.group(1) if match else self.env.get("SIGHTLINE_REDIS_URL", "")

    def request(self, method: str, path: str, key: str | None = "pro", **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key == "pro":
            headers["X-License-Key"] = self.pro_key
        elif key == "basic":
            headers["X-License-Key"] = self.basic_key
        elif key:
            headers["X-License-Key"] = key
        kwargs.setdefault("timeout", 120)
        return requests.request(method, self.api + path, headers=headers, **kwargs)

    def post(self, path: str, json=None, **kwargs) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def analyze(self, body: dict, timeout: float = 300) -> tuple[str, list[dict]]:
        """Start an analysis, follow it over Socket.IO to ``done: true``; (task_id, events)."""
        with ProgressListener(self.base) as listener:
            response = self.post("/analyze", body)
            assert response.status_code == 202, response.text
            task_id = response.json()["task_id"]
            events = listener.follow(task_id, timeout=timeout)
        return task_id, events

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until no analysis task holds the slot (a new /analyze would not get 409)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.post("/analyze/cancel").json()
            if status["message"].startswith("No analysis"):
                return
            time.sleep(0.5)
        raise AssertionError("the previous analysis task never finished")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class ProgressListener:
    """A real python-socketio client that joins task rooms and records progress events."""

    def __init__(self, base: str):
        self.base = base
        self.client = socketio.Client(reconnection=True)
        self.events: dict[str, list[dict]] = {}
        self.done: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.client.on("progress", self._on_progress)

    def _on_progress(self, data):
        task_id = data.get("task_id")
        with self.lock:
            self.events.setdefault(task_id, []).append(data)
            if data.get("done"):
                self.done.setdefault(task_id, threading.Event()).set()

    def __enter__(self):
        self.client.connect(self.base, transports=["websocket"], wait_timeout=10)
        return self

    def __exit__(self, *exc):
        self.client.disconnect()

    def join(self, task_id: str) -> None:
        with self.lock:
            self.done.setdefault(task_id, threading.Event())
        self.client.emit("join", task_id)

    def follow(self, task_id: str, timeout: float = 300) -> list[dict]:
        self.join(task_id)
        if not self.done[task_id].wait(timeout):
            raise AssertionError(f"no done event for {task_id} within {timeout}s; got "
                                 f"{self.events.get(task_id, [])[-5:]}")
        with self.lock:
            return list(self.events[task_id])


def _build_tiny_visual_model(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.tiny_models import build_tiny_clip

    return build_tiny_clip(folder)


def start_server(tmp: Path, extra_env: dict | None = None, models_dir: Path | None = None) -> Server:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    env.update({
        "SIGHTLINE_HOME": str(home),
        "SIGHTLINE_MODELS_DIR": str(models_dir or home / "models"),
        "SIGHTLINE_VISUAL_MODEL": "tiny-clip",
        "SIGHTLINE_TASK_STALE_SECONDS": "20",
        "SIGHTLINE_WATCH_POLL_SECONDS": "1",
        "SIGHTLINE_WATCH_STABLE_SECONDS": "1.5",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    })
    port = free_port()
    log_path = tmp / "server.log"
    process = subprocess.Popen([str(BIN / "sightline"), "serve", "--port", str(port)], env=env,
                               stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
        time.sleep(0.3)
    return Server(home, port, env, process, log_path)


@pytest.fixture(scope="session")
def session_tmp() -> Path:
    TMP_ROOT.mkdir(parents=True, exist_ok=True)
    path = TMP_ROOT / f"session-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir(session_tmp) -> Path:
    return _build_tiny_visual_model(session_tmp / "tiny-clip-src")


@pytest.fixture(scope="session")
def server(session_tmp, tiny_model_dir) -> Server:
    """One server for the session, with the tiny CLIP imported as the active visual model."""
    home = session_tmp / "server"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")},
           "SIGHTLINE_HOME": str(home / "home"), "SIGHTLINE_MODELS_DIR": str(home / "home" / "models")}
    result = sightline("models", "import", "tiny-clip", str(tiny_model_dir), env=env, check=False)
    assert result.returncode == 0, result.stderr
    srv = start_server(home)
    yield srv
    srv.stop()


@pytest.fixture()
def media(tmp_path) -> dict[str, Path]:
    """Copies of the real test media in a per-test folder (tests may rename or corrupt them)."""
    out = {}
    for name in ("counter.mp4", "fades.mp4", "testvideo.mp4", "jfk.flac"):
        source = DATA / name
        if source.exists():
            out[name] = Path(shutil.copy(source, tmp_path / name))
    return out


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL cluster for the session (see tests/databases.py)."""
    from tests.databases import Postgres

    try:
        cluster = Postgres()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not available here: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, session_tmp) -> str:
    """The same tests on both databases: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{session_tmp / 'sightline-test.db'}"
    return request.getfixturevalue("postgres").url()


@pytest.fixture(scope="session")
def web_server(session_tmp, tiny_model_dir):
    """A server whose media and export roots are set (the web page, its media routes and the CLI
    client): ``(server, media_root, export_root)``. Media inside the root: copies of the test files."""
    home = session_tmp / "web"
    media_root, export_root = home / "media", home / "exports"
    media_root.mkdir(parents=True)
    export_root.mkdir()
    for name in ("counter.mp4", "fades.mp4", "testvideo.mp4", "jfk.flac"):
        shutil.copy(DATA / name, media_root / name)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")},
           "SIGHTLINE_HOME": str(home / "home"), "SIGHTLINE_MODELS_DIR": str(home / "home" / "models")}
    result = sightline("models", "import", "tiny-clip", str(tiny_model_dir), env=env, check=False)
    assert result.returncode == 0, result.stderr
    srv = start_server(home, {"SIGHTLINE_MEDIA_ROOTS": str(media_root), "SIGHTLINE_EXPORT_ROOTS": str(export_root)})
    yield srv, media_root, export_root
    srv.stop()
