"""Editor benchmark: preview latency on a 1080p source, and export against a full re-encode.

    python bench/editor.py [--minutes 10] [--edits 10] [--export-height 720] [--requests 40]

Starts ``sightline serve`` on a temporary home and measures through HTTP, as a client sees it:

- ``preview_frame`` / ``grade_preview``: POST the preview, then GET the JPEG, at a different
  frame (and for grades a different brightness) each time, so no preview cache helps. p50/p99 ms,
  measured once the asset's preview proxy exists (``proxy_ready_s``: how long that took).
- ``export``: a ``--minutes`` timeline (x264, 2 s GOP) with ``--edits`` cuts (each removes one
  second at a time between keyframes), exported through /api/export (stream copy of the whole
  GOPs, re-encode of the heads and tails), against one plain ffmpeg command that re-encodes the
  same edit (trim + concat filters, the same x264 preset and CRF) in the same run. Prints both
  wall times and their ratio (goal: <= 0.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_server  # noqa: E402
from workers.editor.render import ENCODE_VIDEO  # noqa: E402
from workers.exports.ffmpeg import run_ffmpeg  # noqa: E402


def _source(path: Path, seconds: float, height: int, fps: int = 30) -> None:
    width = height * 16 // 9 // 2 * 2
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={fps}:d={seconds}",
                "-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                "-g", str(2 * fps), "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], timeout=7200)


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1), "p99_ms": round(p99 * 1000, 1),
            "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--export-height", type=int, default=720)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sightline-bench-editor-") as tmp:
        tmp = Path(tmp)
        server = start_server(tmp / "srv")
        try:
            out = {"preview_source": "1920x1080 30 fps x264 (2 s GOP), 20 s"}
            session = requests.Session()
            session.headers["X-License-Key"] = server.pro_key
            api = f"{server.base}/api"
            preview_src = tmp / "preview1080.mp4"
            _source(preview_src, 20, 1080)
            started = time.perf_counter()
            project = session.post(f"{api}/project", json={"name": "bench", "video_url": str(preview_src)}).json()
            segment = project["segments"][0]["id"]
            # Previews come from the asset's proxy once the worker has made it (the steady state).
            while not session.get(f"{api}/project/{project['id']}").json()["assets"][0]["proxy"]:
                time.sleep(0.2)
            out["proxy_ready_s"] = round(time.perf_counter() - started, 2)
            frames, grades = [], []
            for number in range(args.requests):
                ts = (number * 7.31) % 19.5
                started = time.perf_counter()
                url = session.post(f"{api}/project/{project['id']}/preview/frame", json={"ts": ts}).json()["frame_url"]
                assert requests.get(url, timeout=60).status_code == 200
                frames.append(time.perf_counter() - started)
                started = time.perf_counter()
                url = session.post(f"{api}/segment/{segment}/grade-preview",
                                   json={"ts": ts, "brightness": round(0.01 + number * 0.02, 3), "contrast": 0.1,
                                         "temperature": 0.3}).json()["preview_frame_url"]
                assert requests.get(url, timeout=60).status_code == 200
                grades.append(time.perf_counter() - started)
            out["preview_frame"] = _percentiles(frames)
            out["grade_preview"] = _percentiles(grades)

            seconds = args.minutes * 60
            source = tmp / "long.mp4"
            _source(source, seconds, args.export_height)
            project = session.post(f"{api}/project", json={"name": "long", "video_url": str(source)}).json()
            # Each edit removes one second starting 0.5 s after a keyframe: cuts off the keyframes.
            step = seconds / (args.edits + 1)
            keep, cursor = [], 0.0
            for number in range(1, args.edits + 1):
                cut = round((number * step) / 2) * 2 + 0.5
                keep.append((cursor, cut))
                cursor = cut + 1.0
            keep.append((cursor, seconds))
            segment = project["segments"][0]["id"]
            for _, cut in keep[:-1]:
                parts = session.post(f"{api}/segment/{segment}/split", json={"split_ts": cut}).json()
                right = session.post(f"{api}/segment/{parts['right']['id']}/split",
                                     json={"split_ts": cut + 1.0}).json()
                session.delete(f"{api}/segment/{right['left']['id']}")
                segment = right["right"]["id"]
            # The worker makes the long file's preview proxy first (one analysis job at a time); a user
            # exports long after that, so the export is timed once it is done, and the proxy apart.
            started = time.perf_counter()
            while not session.get(f"{api}/project/{project['id']}").json()["assets"][0]["proxy"]:
                time.sleep(0.5)
            long_proxy = time.perf_counter() - started
            timeline = session.get(f"{api}/project/{project['id']}").json()
            started = time.perf_counter()
            export = session.post(f"{api}/export", json={"project_id": project["id"]}).json()
            while True:
                status = session.get(f"{api}/export/{export['export_job_id']}").json()
                if status["status"] in ("completed", "failed"):
                    break
                time.sleep(0.2)
            ours = time.perf_counter() - started
            assert status["status"] == "completed", status
            graph = "".join(f"[0:v]trim={a}:{b},setpts=PTS-STARTPTS[v{i}];[0:a]atrim={a}:{b},asetpts=PTS-STARTPTS[a{i}];"
                            for i, (a, b) in enumerate(keep))
            graph += "".join(f"[v{i}][a{i}]" for i in range(len(keep))) + f"concat=n={len(keep)}:v=1:a=1[v][a]"
            started = time.perf_counter()
            run_ffmpeg(["-y", "-i", str(source), "-filter_complex", graph, "-map", "[v]", "-map", "[a]",
                        *ENCODE_VIDEO, "-c:a", "aac", "-b:a", "192k", str(tmp / "plain.mp4")], timeout=7200)
            plain = time.perf_counter() - started
            modes = [p["mode"] for p in status["parts"]]
            out["export"] = {
                "timeline_minutes": args.minutes, "edits": args.edits, "height": args.export_height,
                "segments": len(timeline["segments"]), "timeline_seconds": timeline["duration"],
                "exported_seconds": status["duration"], "pieces_copied": modes.count("copy"),
                "pieces_encoded": modes.count("encode"), "export_s": round(ours, 2),
                "plain_reencode_s": round(plain, 2), "ratio": round(ours / plain, 3),
                "proxy_s_before_export": round(long_proxy, 2)}
            print(json.dumps(out, indent=2))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
