"""The editor's engine: grades as ffmpeg filters, frame-exact previews and renders, the export
that stream-copies what it can, AI providers, and full-reference scores. Plain values in and
out; nothing here knows about HTTP or the database."""

from pathlib import Path


def project_dir(data_dir: Path, project_id: str) -> Path:
    """Where a project's media lives: ``assets/``, ``uploads/``, ``proxies/``, ``previews/``,
    ``renders/``, ``variants/<job>/``, ``exports/``."""
    return Path(data_dir) / "editor" / project_id


def proxy_path(data_dir: Path, project_id: str, asset_id: str) -> Path:
    return project_dir(data_dir, project_id) / "proxies" / f"{asset_id}.mp4"
