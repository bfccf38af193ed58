"""``sightline analyze | search | transcript``: a client of a running server, over HTTP and
Socket.IO, like any other client (it never imports the engines). The server is
``--server`` / ``SIGHTLINE_SERVER`` (default the local one), the key ``--key`` / ``SIGHTLINE_KEY``.

Exit codes: 0 all good, 1 a file failed (analyze) or nothing to show, 2 the request was refused
or the server cannot be reached, 130 interrupted (the analysis is cancelled on the server)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

DEFAULT_SERVER = "http://127.0.0.1:6699"


class ClientError(Exception):
    """Something the user must fix (server down, key refused, bad path): printed, exit 2."""


class Client:
    def __init__(self, server: str, key: str | None, timeout: float = 120):
        self.base = server.rstrip("/")
        self.api = self.base + "/api/v1"
        self.key = key
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        import requests

        headers = {"X-License-Key": self.key} if self.key else {}
        try:
            response = requests.request(method, self.api + path, json=body, params=params, headers=headers,
                                        timeout=self.timeout)
        except requests.ConnectionError:
            raise ClientError(f"cannot reach the server at {self.base} (is `sightline serve` running? "
                              "--server / SIGHTLINE_SERVER)") from None
        except requests.Timeout:
            raise ClientError(f"the server at {self.base} did not answer {method} {path} in {self.timeout:.0f}s") from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not response.ok:
            message = data.get("error") if isinstance(data, dict) else None
            if response.status_code == 401 and not self.key:
                message = "this server needs a licence key: --key or SIGHTLINE_KEY"
            raise ClientError(f"{response.status_code}: {message or response.reason}")
        return data


def _client(args) -> Client:
    return Client(args.server or os.environ.get("SIGHTLINE_SERVER") or DEFAULT_SERVER,
                  args.key or os.environ.get("SIGHTLINE_KEY"))


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


# --- analyze ------------------------------------------------------------------------------------

AUDIO = {".mp3", ".wav", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".aif", ".aiff", ".wma"}


def _media_files(paths: list[str]) -> list[str]:
    """Files as given, folders expanded to the media files under them; absolute, in order."""
    from workers.media.probe import MEDIA_EXTENSIONS

    out: list[str] = []
    for raw in paths:
        path = Path(raw).expanduser().absolute()
        if path.is_dir():
            out.extend(str(p) for p in sorted(path.rglob("*"))
                       if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS and not p.name.startswith("."))
        else:
            out.append(str(path))  # a missing file is the server's to report, per file
    return list(dict.fromkeys(out))


def _analyze_body(args, files: list[str]) -> dict:
    visual = [f for f in files if Path(f).suffix.lower() not in AUDIO]
    body: dict = {"cache_dir": str(Path(args.cache_dir).expanduser().absolute()),
                  "visual_media_paths": [] if args.no_visual else visual}
    if args.speech:
        body["transcription_jobs"] = [{"path": f, "language": args.speech} for f in files]
    if args.faces:
        body["face_clustering_jobs"] = [{"cluster_job_name": args.faces, "face_media_paths": visual}]
    return body


class _Follower:
    """Socket.IO progress of one task: a bar per file and part, a line when one ends."""

    def __init__(self, progress, console):
        self.progress, self.console = progress, console
        self.bars: dict[tuple[str, str], int] = {}
        self.labels: dict[tuple[str, str], str] = {}
        self.ended: set[tuple[str, str]] = set()
        self.final: dict | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def bar(self, path: str, part: str) -> int:
        key = (path, part)
        if key not in self.bars:
            label = f"{Path(path).name} ({'speech' if part == 'speech' else 'visual'})"
            self.bars[key] = self.progress.add_task(label, total=100)
            self.labels[key] = label
        return self.bars[key]

    def on_progress(self, event: dict) -> None:
        with self.lock:
            if event.get("done"):
                self.final = event
                self.done.set()
                return
            path = event.get("video_path")
            if not path:
                if event.get("type") == "faces" or event.get("is_cluster_job"):
                    self.console.print(f"clustering faces: {event.get('progress', 0):.0f}%")
                return
            part = "speech" if event.get("type") == "speech" else "video"
            task = self.bar(path, part)
            status = event.get("status")
            name = self.labels[(path, part)]
            if status in ("failed", "cancelled"):
                self.progress.update(task, completed=100, description=f"{name} [{status}]")
                if (path, part) not in self.ended:
                    self.ended.add((path, part))
                    self.console.print(f"✗ {name}: {status}" + (f": {event['error']}" if event.get("error") else ""))
                return
            self.progress.update(task, completed=float(event.get("progress") or 0))
            if float(event.get("progress") or 0) >= 100 and (path, part) not in self.ended:
                self.ended.add((path, part))
                self.console.print(f"✓ {name}: done")


def cmd_analyze(args) -> int:
    import socketio
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = _console()
    client = _client(args)
    files = _media_files(args.paths)
    if not files:
        raise ClientError("no media files in the given paths")
    body = _analyze_body(args, files)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                        console=console, transient=False)
    follower = _Follower(progress, console)
    sio = socketio.Client(reconnection=True)
    sio.on("progress", follower.on_progress)
    task_id = None
    sio.on("connect", lambda: task_id and sio.emit("join", task_id))
    try:
        sio.connect(client.base, transports=["websocket"], wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        raise ClientError(f"cannot reach the server at {client.base} (is `sightline serve` running?)") from None
    try:
        started = client.call("POST", "/analyze", body)
        task_id = started["task_id"]
        for path, why in (started.get("invalid_paths") or {}).items():
            console.print(f"✗ {Path(path).name}: refused: {why}")
        for warning in started.get("warnings") or []:
            console.print(f"! {warning}")
        with progress:
            for path in body["visual_media_paths"]:
                follower.bar(path, "video")
            for job in body.get("transcription_jobs", []):
                follower.bar(job["path"], "speech")
            sio.emit("join", task_id)
            try:
                while not follower.done.wait(0.5):
                    pass
            except KeyboardInterrupt:
                console.print("interrupted: cancelling the analysis on the server")
                client.call("POST", "/analyze/cancel", {})
                return 130
    finally:
        sio.disconnect()
    final = follower.final or {}
    status = final.get("status", "unknown")
    failed = int(final.get("files_failed") or 0)
    table = Table(title=f"Analysis {status.replace('_', ' ')}: {final.get('files_total', len(files))} files, "
                        f"{failed} failed", title_justify="left")
    table.add_column("File")
    table.add_column("Result")
    errors = {e.get("path"): e.get("error") for e in final.get("errors") or [] if e.get("path")}
    for path in files:
        table.add_row(Path(path).name, f"failed: {errors[path]}" if path in errors else
                      ("refused: " + started["invalid_paths"][path]) if path in (started.get("invalid_paths") or {})
                      else "ok")
    for error in final.get("errors") or []:
        if error.get("cluster_job_name"):
            table.add_row(f"face job {error['cluster_job_name']}", f"failed: {error.get('error')}")
    console.print(table)
    refused = len(started.get("invalid_paths") or {})
    return 0 if status == "completed" and not failed and not refused else 1


# --- search ---------------------------------------------------------------------------------------

def cmd_search(args) -> int:
    from rich.table import Table

    client = _client(args)
    cache_dir = str(Path(args.cache_dir).expanduser().absolute())
    client.call("POST", "/analysis-data/load", {"cache_dir": cache_dir})
    body: dict = {"cache_dir": cache_dir, "query": args.text, "max_results": args.max_results, "search_all": True}
    if args.exclude:
        body["exclude"] = args.exclude
    matches = client.call("POST", "/search/text", body)["matches"]
    if args.json:
        for match in matches:
            match.pop("image", None)  # base64 JPEGs: a terminal has no use for them
        print(json.dumps({"query": args.text, "matches": matches}, indent=1))
        return 0
    table = Table(title=f"{len(matches)} moments for “{args.text}”", title_justify="left")
    for column in ("#", "File", "Timestamp", "Scene"):
        table.add_column(column)
    for rank, match in enumerate(matches, 1):
        table.add_row(str(rank), match.get("video_path", ""), match["timestamp"],
                      f"{match.get('scene_start_timestamp', '')}–{match.get('scene_end_timestamp', '')}")
    _console().print(table)
    return 0 if matches else 1


# --- transcript -----------------------------------------------------------------------------------

def cmd_transcript(args) -> int:
    from workers.exports.transcript import FORMATS, render_transcript

    if args.format not in FORMATS:
        raise ClientError(f"--format: one of {', '.join(FORMATS)}")
    client = _client(args)
    path = str(Path(args.file).expanduser().absolute())
    reply = client.call("POST", "/transcriptions", {"cache_dir": str(Path(args.cache_dir).expanduser().absolute()),
                                                    "media_paths": [path]})
    segments = [row[:3] for row in reply["transcriptions"].get(path, [])]
    if not segments:
        print(f"sightline transcript: {args.file} has no transcript in {args.cache_dir} "
              "(run `sightline analyze FILE --speech LANG` first)", file=sys.stderr)
        return 1
    data, _rows = render_transcript(segments, args.format, Path(path).stem, include_silences=not args.no_silences)
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output}", file=sys.stderr)
    elif args.format in ("docx", "pdf"):
        raise ClientError(f"--format {args.format} is a binary file: give --output FILE")
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


# --- wiring ---------------------------------------------------------------------------------------

def _client_command(sub, name: str, summary: str, command, positional: str,
                    **positional_options) -> argparse.ArgumentParser:
    """A subcommand that talks to a running server: its one positional argument, ``--cache-dir``
    and the connection options (``--server``, ``--key``); the caller adds its own."""
    parser = sub.add_parser(name, help=summary)
    parser.add_argument(positional, **positional_options)
    parser.add_argument("--cache-dir", default=os.environ.get("SIGHTLINE_CACHE_DIR"),
                        required=not os.environ.get("SIGHTLINE_CACHE_DIR"),
                        help="the analysis cache folder on the server (SIGHTLINE_CACHE_DIR)")
    parser.add_argument("--server", help=f"server URL (default SIGHTLINE_SERVER or {DEFAULT_SERVER})")
    parser.add_argument("--key", help="licence key (default SIGHTLINE_KEY)")
    parser.set_defaults(func=_guarded(command))
    return parser


def _guarded(command):
    def run(args) -> int:
        try:
            return command(args)
        except ClientError as exc:
            print(f"sightline {args.command}: {exc}", file=sys.stderr)
            return 2
    return run


def add_client_commands(sub) -> None:
    analyze = _client_command(sub, "analyze", "analyse files on a running server, with a progress bar per file",
                              cmd_analyze, "paths", nargs="+", metavar="PATH",
                              help="media files or folders (as the server sees them)")
    analyze.add_argument("--speech", metavar="LANG", help="also transcribe, in this language (e.g. en)")
    analyze.add_argument("--faces", metavar="JOB", help="also cluster faces into this face job")
    analyze.add_argument("--no-visual", action="store_true", help="skip visual analysis")

    search = _client_command(sub, "search", "find moments matching a description", cmd_search, "text")
    search.add_argument("--exclude", action="append", metavar="TERM", help="rank frames like TERM lower (repeatable)")
    search.add_argument("--max-results", type=int, default=20)
    search.add_argument("--json", action="store_true", help="print the matches as JSON")

    transcript = _client_command(sub, "transcript",
                                 "print a file's transcript (srt, vtt, txt, csv; docx/pdf to --output)",
                                 cmd_transcript, "file")
    transcript.add_argument("--format", default="txt", type=str.lower)
    transcript.add_argument("--output", "-o", help="write to this local file instead of stdout")
    transcript.add_argument("--no-silences", action="store_true", help="no [silence] rows (txt, csv)")
