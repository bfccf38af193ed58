"""The one settings object: every knob is an environment variable with a ``SIGHTLINE_`` prefix.

``docs/settings.md`` lists them. Settings are read when ``load_settings()`` is called, so a
process started with a different environment (a test server, a worker on another machine)
sees its own values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

API_PREFIX = "/api/v1"
DEFAULT_PORT = 6699


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"SIGHTLINE_{name}")
    return value if value not in (None, "") else default


def _env_as(name: str, default, convert, what: str):
    raw = _env(name)
    try:
        return convert(raw) if raw is not None else default
    except ValueError as exc:
        raise ValueError(f"SIGHTLINE_{name} must be {what}, got {raw!r}") from exc


def _env_int(name: str, default: int) -> int:
    return _env_as(name, default, int, "an integer")


def _env_float(name: str, default: float) -> float:
    return _env_as(name, default, float, "a number")


def _env_paths(name: str) -> tuple[Path, ...]:
    raw = _env(name)
    if not raw:
        return ()
    return tuple(Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip())


def _in_home(name: str) -> property:
    def path(settings: Settings) -> Path:
        return settings.home / name

    return property(path)


@dataclass(frozen=True)
class Settings:
    home: Path
    host: str
    port: int
    redis_url: str | None
    media_roots: tuple[Path, ...]
    export_roots: tuple[Path, ...]
    models_dir: Path
    visual_model: str
    speech_model: str
    face_detector: str
    face_model: str
    device: str
    worker_concurrency: int
    thumbnail_max_side: int
    thumbnail_quality: int
    task_stale_seconds: float
    watch_poll_seconds: float
    watch_stable_seconds: float
    search_timeout_seconds: float
    log_level: str
    database_url: str = ""
    data_dir: Path = Path()
    public_url: str | None = None
    # Face detector of the reframe pipeline's face tracking: "hog" (fast) or "cnn" (dlib MMOD).
    face_track_detector: str = "hog"
    ingest_max_bytes: int = 20 * 1024 ** 3
    ingest_timeout_seconds: float = 30.0
    llm_url: str | None = None
    llm_model: str = "default"
    llm_key: str | None = None
    llm_timeout_seconds: float = 60.0
    upload_max_bytes: int = 8 * 1024 ** 3
    signed_url_seconds: int = 3600
    preview_max_side: int = 1280
    ai_provider: str = "offline"
    ai_url: str | None = None
    ai_api_key: str | None = None
    ai_timeout_seconds: float = 300.0
    # The model cache (workers/engines/cache.py); 0 = no bound beyond each kind's own.
    model_cache_max_entries: int = 0
    model_cache_max_gb: float = 0.0
    model_idle_seconds: float = 0.0

    # What the server keeps under its home (SIGHTLINE_HOME).
    keys_file = _in_home("keys.json")
    state_file = _in_home("state.json")
    watch_folders_file = _in_home("watch_folders.json")
    redis_dir = _in_home("redis")


EMBEDDED_REDIS_ENV = "SIGHTLINE_EMBEDDED_REDIS_URL"


def redis_url(default: str | None = None) -> str:
    """The Redis every process talks to: ``SIGHTLINE_REDIS_URL``, else the embedded server
    ``sightline serve`` started (it passes its URL down as ``SIGHTLINE_EMBEDDED_REDIS_URL``),
    else ``default``. The one place both are read, so the API, the workers and Celery agree.
    """
    url = _env("REDIS_URL") or _env("EMBEDDED_REDIS_URL") or default
    if not url:
        raise RuntimeError("No Redis URL: set SIGHTLINE_REDIS_URL, or start everything with `sightline serve`")
    return url


_cached: tuple[tuple, Settings] | None = None


def load_settings() -> Settings:
    """The settings of this process's environment now (re-read whenever a ``SIGHTLINE_``
    variable, ``HOME`` or the working folder changes; a search reads them several times,
    and resolving their paths each time cost ~0.25 ms)."""
    global _cached
    key = (os.getcwd(), os.environ.get("HOME"),
           *((k, v) for k, v in os.environ.items() if k.startswith("SIGHTLINE_")))
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    settings = _read_settings()
    _cached = (key, settings)
    return settings


def _read_settings() -> Settings:
    home = Path(_env("HOME", "~/.sightline")).expanduser().resolve()
    return Settings(
        home=home,
        host=_env("HOST", "127.0.0.1"),
        port=_env_int("PORT", DEFAULT_PORT),
        redis_url=_env("REDIS_URL"),
        media_roots=_env_paths("MEDIA_ROOTS"),
        export_roots=_env_paths("EXPORT_ROOTS"),
        models_dir=Path(_env("MODELS_DIR", str(home / "models"))).expanduser().resolve(),
        visual_model=_env("VISUAL_MODEL", "v2-medium-256"),
        speech_model=_env("SPEECH_MODEL", "whisper-tiny.en"),
        face_detector=_env("FACE_DETECTOR", "dlib"),
        face_model=_env("FACE_MODEL", "Dlib"),
        device=_env("DEVICE", "auto"),
        worker_concurrency=_env_int("WORKER_CONCURRENCY", 1),
        thumbnail_max_side=_env_int("THUMBNAIL_MAX_SIDE", 384),
        thumbnail_quality=_env_int("THUMBNAIL_QUALITY", 65),
        task_stale_seconds=_env_float("TASK_STALE_SECONDS", 30.0),
        watch_poll_seconds=_env_float("WATCH_POLL_SECONDS", 10.0),
        watch_stable_seconds=_env_float("WATCH_STABLE_SECONDS", 5.0),
        search_timeout_seconds=_env_float("SEARCH_TIMEOUT_SECONDS", 60.0),
        log_level=_env("LOG_LEVEL", "INFO").upper(),
        database_url=_env("DATABASE_URL", f"sqlite:///{home / 'sightline.db'}"),
        data_dir=Path(_env("DATA_DIR", str(home / "data"))).expanduser().resolve(),
        public_url=_env("PUBLIC_URL"),
        face_track_detector=_env("FACE_TRACK_DETECTOR", "hog").lower(),
        ingest_max_bytes=_env_int("INGEST_MAX_BYTES", 20 * 1024 ** 3),
        ingest_timeout_seconds=_env_float("INGEST_TIMEOUT_SECONDS", 30.0),
        llm_url=_env("LLM_URL"),
        llm_model=_env("LLM_MODEL", "default"),
        llm_key=_env("LLM_KEY"),
        llm_timeout_seconds=_env_float("LLM_TIMEOUT_SECONDS", 60.0),
        upload_max_bytes=_env_int("UPLOAD_MAX_BYTES", 8 * 1024 ** 3),
        signed_url_seconds=_env_int("SIGNED_URL_SECONDS", 3600),
        preview_max_side=_env_int("PREVIEW_MAX_SIDE", 1280),
        ai_provider=_env("AI_PROVIDER", "offline").lower(),
        ai_url=_env("AI_URL"),
        ai_api_key=_env("AI_API_KEY"),
        ai_timeout_seconds=_env_float("AI_TIMEOUT_SECONDS", 300.0),
        model_cache_max_entries=_env_int("MODEL_CACHE_MAX_ENTRIES", 0),
        model_cache_max_gb=_env_float("MODEL_CACHE_MAX_GB", 0.0),
        model_idle_seconds=_env_float("MODEL_IDLE_SECONDS", 0.0),
    )
