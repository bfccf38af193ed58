"""Fuzz the HTTP API against its own OpenAPI document with schemathesis (``st run``).

Starts a real ``sightline serve`` (embedded Redis, workers, the tiny test CLIP) whose media
and export roots are temp folders, analyses a video (and, unless ``--no-speech``,
transcribes an audio file) so searches, thumbnails and transcripts reach real data, then
runs schemathesis with a fixed seed over every operation. Every response is checked: no
5xx, and status code, content type, headers and body all as the document says. Strings the
document marks ``format: path`` are drawn from real files, folders, missing files and paths
outside the roots, besides random text, so requests get past path validation.

    .venv/bin/python bench/fuzz_api.py                       # >= 1,000 requests
    .venv/bin/python bench/fuzz_api.py --max-examples 10 --phases fuzzing
    .venv/bin/python bench/fuzz_api.py --url http://127.0.0.1:6699/api/v1 --key sl-pro-...

Prints one JSON object (requests, failures by check, a sample of each failure) and exits 1
when any check failed or a request errored. With ``--url`` the server's roots must already
be the folders given by ``--media-dir`` / ``--export-dir`` (else most paths just get 403).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")
DIRS_ENV = "SIGHTLINE_FUZZ_DIRS"  # read by this file when schemathesis loads it as its hooks module
EXPORT_NAMES = ("clips", "seq.xml", "notes.txt", "subs.srt", "subs.vtt", "rows.csv", "doc.docx", "doc.pdf",
                "nested/deeper/out.xml")


class FuzzDirs:
    """The temp folders a fuzz run may touch: media (the media root, holding the cache) and export."""

    def __init__(self, media: Path, export: Path):
        self.media, self.export = Path(media), Path(export)
        self.cache = self.media / "cache"

    def to_env(self) -> str:
        return json.dumps({"media": str(self.media), "export": str(self.export)})

    @classmethod
    def from_env(cls, value: str) -> FuzzDirs:
        raw = json.loads(value)
        return cls(Path(raw["media"]), Path(raw["export"]))


def prepare_media(dirs: FuzzDirs) -> None:
    """Real media plus the awkward cases: an image, a corrupt and an empty video, a text file, a folder."""
    for folder in (dirs.media, dirs.export, dirs.cache, dirs.media / "folder"):
        folder.mkdir(parents=True, exist_ok=True)
    for name in ("counter.mp4", "jfk.flac"):
        shutil.copy(DATA / name, dirs.media / name)
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 40, 90)).save(dirs.media / "photo.png")
    (dirs.media / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (dirs.media / "empty.mp4").write_bytes(b"")
    (dirs.media / "notes.txt").write_text("not media\n")


def path_strategy(dirs: FuzzDirs):
    """Paths a client might send, one kind in four each: real media; other files and folders,
    missing files and paths escaping the roots; export targets; arbitrary text (relative paths,
    NUL bytes...)."""
    from hypothesis import strategies as st

    media, export = dirs.media, dirs.export
    real = [media / name for name in ("counter.mp4", "jfk.flac", "photo.png")]
    other = [media / name for name in ("corrupt.mp4", "empty.mp4", "notes.txt", "folder", "missing.mp4", "cache")]
    other += [media, dirs.cache / "0123456789abcdef", media / ".." / "escape.mp4", Path("/etc/passwd"), export]
    return st.one_of(st.sampled_from([str(p) for p in real]), st.sampled_from([str(p) for p in other]),
                     st.sampled_from([str(export / name) for name in EXPORT_NAMES]), st.text(max_size=40))


def register_hooks(dirs: FuzzDirs) -> None:
    """Teach schemathesis the ``path`` format, and point most bodies at the analysed library
    (cache_dir, and sometimes every ``*_paths`` list at the analysed video): else nearly every
    search, load, thumbnail and analyze request stops at "nothing loaded" or "no valid media"."""
    import schemathesis
    from hypothesis import strategies as st

    schemathesis.openapi.format("path", path_strategy(dirs))
    library, video = str(dirs.cache), str(dirs.media / "counter.mp4")

    def at_library(body: dict, with_video: bool) -> dict:
        body = {**body, "cache_dir": library}
        if with_video:
            body.update({key: [video] for key, value in body.items() if key.endswith("_paths") and
                         isinstance(value, list)})
        return body

    def flatmap_body(context, body):
        if isinstance(body, dict) and isinstance(body.get("cache_dir"), str):
            return st.sampled_from([body, at_library(body, False), at_library(body, False), at_library(body, True)])
        return st.just(body)

    schemathesis.hook(flatmap_body)


def start_fuzz_server(tmp: Path, model_dir: Path | None = None):
    """A ``sightline serve`` with the tiny CLIP active and its roots in ``tmp``; (server, dirs)."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import sightline, start_server
    from tests.tiny_models import build_tiny_clip

    dirs = FuzzDirs(tmp / "media", tmp / "export")
    prepare_media(dirs)
    home = tmp / "server"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")},
           "SIGHTLINE_HOME": str(home / "home"), "SIGHTLINE_MODELS_DIR": str(home / "home" / "models")}
    model_dir = model_dir or build_tiny_clip(tmp / "tiny-clip-src")
    sightline("models", "import", "tiny-clip", str(model_dir), env=env)
    server = start_server(home, extra_env={"SIGHTLINE_MEDIA_ROOTS": str(dirs.media),
                                           "SIGHTLINE_EXPORT_ROOTS": str(dirs.export)})
    return server, dirs


def analyse_library(server, dirs: FuzzDirs, speech: bool = True) -> None:
    """Analyse the video (and transcribe the audio) and load both, so queries find something."""
    body = {"cache_dir": str(dirs.cache), "visual_media_paths": [str(dirs.media / "counter.mp4")]}
    if speech:
        body["transcription_jobs"] = [{"path": str(dirs.media / "jfk.flac")}]
    _, events = server.analyze(body)
    if events[-1].get("status") != "completed":
        raise RuntimeError(f"analysing the fuzz library failed: {events[-1]}")
    response = server.post("/analysis-data/load", {"cache_dir": str(dirs.cache)})
    response.raise_for_status()


def st_command(api: str, key: str, *, max_examples: int, seed: int, report_dir: Path,
               phases: str | None = None, workers: int = 2) -> list[str]:
    """The ``st run`` command line."""
    command = [str(Path(sys.executable).parent / "st"), "run", f"{api}/openapi.json",
               "--header", f"X-License-Key: {key}", "--checks", ",".join(CHECKS),
               "--max-examples", str(max_examples), "--seed", str(seed), "--workers", str(workers),
               "--request-timeout", "180", "--suppress-health-check", "all", "--no-shrink",
               "--report", "ndjson", "--report-dir", str(report_dir), "--output-truncate", "true"]
    if phases:
        command += ["--phases", phases]
    return command


def summarise(ndjson: Path) -> dict:
    """Requests sent, check results by check, and a sample request/response per failed check."""
    requests = 0
    checks: dict[str, Counter] = {name: Counter() for name in CHECKS}
    failures: dict[str, list[dict]] = {}
    errors: list[str] = []
    operations: set[str] = set()
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        if "NonFatalError" in event or "FatalError" in event:
            payload = event.get("NonFatalError") or event.get("FatalError")
            errors.append(json.dumps(payload)[:1000])
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        interactions = recorder.get("interactions", {})
        requests += len(interactions)
        if interactions:
            operations.add(recorder["label"])
        for case_id, results in recorder.get("checks", {}).items():
            for result in results:
                checks.setdefault(result["name"], Counter())[result["status"]] += 1
                if result["status"] != "failure":
                    continue
                samples = failures.setdefault(result["name"], [])
                if len(samples) < 5:
                    samples.append(_failure_sample(result, interactions.get(case_id)))
    failed = {name: counts["failure"] for name, counts in checks.items() if counts["failure"]}
    return {"requests": requests, "operations_tested": len(operations), "failures_by_check": failed,
            "checks": {name: dict(counts) for name, counts in checks.items()},
            "errors": errors, "failure_samples": failures}


def _failure_sample(result: dict, interaction: dict | None) -> dict:
    info = (result.get("failure_info") or {}).get("failure", {})
    sample = {"operation": info.get("operation"), "title": info.get("title"),
              "message": (info.get("message") or "")[:600]}
    if interaction:
        request, response = interaction["request"], interaction.get("response") or {}
        sample["request"] = {"method": request.get("method"), "uri": request.get("uri", "")[:400],
                             "body": _text(request.get("body"))[:600]}
        sample["response"] = {"status": response.get("status_code"),
                              "content_type": (response.get("headers", {}).get("content-type") or [None])[0],
                              "body": _text(response.get("content"))[:600]}
    return sample


def _text(payload) -> str:
    if not payload:
        return ""
    if isinstance(payload, dict) and "$base64" in payload:
        import base64

        return base64.b64decode(payload["$base64"]).decode("utf-8", "replace")
    return str(payload)


def run_schemathesis(api: str, key: str, dirs: FuzzDirs, *, max_examples: int, seed: int, workdir: Path,
                     phases: str | None = None, workers: int = 2, timeout: float = 3600) -> dict:
    """Run ``st run`` against a server and summarise it (see :func:`summarise`)."""
    report_dir = workdir / "schemathesis-report"
    shutil.rmtree(report_dir, ignore_errors=True)
    command = st_command(api, key, max_examples=max_examples, seed=seed, report_dir=report_dir, phases=phases,
                         workers=workers)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).resolve()), DIRS_ENV: dirs.to_env()}
    started = time.monotonic()
    completed = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    reports = sorted(report_dir.glob("*.ndjson"))
    if not reports:
        raise RuntimeError(f"schemathesis wrote no report (exit {completed.returncode}):\n"
                           f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
    summary = summarise(reports[-1])
    summary.update({"seconds": round(time.monotonic() - started, 1), "st_exit_code": completed.returncode,
                    "seed": seed, "max_examples": max_examples, "phases": phases or "all",
                    "command": " ".join(command).replace(key, "<pro key>")})
    summary["output_tail"] = completed.stdout[-3000:] if completed.returncode else ""
    return summary


def passed(summary: dict) -> bool:
    return not summary["failures_by_check"] and not summary["errors"] and summary["st_exit_code"] == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=40, help="fuzzing examples per operation")
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--phases", default=None, help="e.g. coverage,fuzzing (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-speech", action="store_true", help="skip transcribing the audio file first")
    parser.add_argument("--url", help="an already running server's API base (.../api/v1)")
    parser.add_argument("--key", help="a Pro licence key for --url")
    parser.add_argument("--media-dir", type=Path, help="with --url: the server's SIGHTLINE_MEDIA_ROOTS")
    parser.add_argument("--export-dir", type=Path, help="with --url: the server's SIGHTLINE_EXPORT_ROOTS")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sightline-fuzz-") as tmp_name:
        tmp = Path(tmp_name)
        server = None
        try:
            if args.url:
                if not (args.key and args.media_dir and args.export_dir):
                    parser.error("--url needs --key, --media-dir and --export-dir")
                dirs = FuzzDirs(args.media_dir, args.export_dir)
                prepare_media(dirs)
                api, key = args.url.rstrip("/"), args.key
            else:
                server, dirs = start_fuzz_server(tmp)
                analyse_library(server, dirs, speech=not args.no_speech)
                api, key = server.api, server.pro_key
            summary = run_schemathesis(api, key, dirs, max_examples=args.max_examples, seed=args.seed,
                                       workdir=tmp, phases=args.phases, workers=args.workers)
            if server is not None:
                summary["server_tracebacks"] = server.log.count("Traceback")
        finally:
            if server is not None:
                server.stop()
    print(json.dumps(summary, indent=2))
    return 0 if passed(summary) else 1


if __name__ == "_schemathesis_hooks" and os.environ.get(DIRS_ENV):
    register_hooks(FuzzDirs.from_env(os.environ[DIRS_ENV]))

if __name__ == "__main__":
    sys.exit(main())
