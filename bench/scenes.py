"""Scene-cut benchmark: our shot detector against PySceneDetect's AdaptiveDetector, same files.

    python bench/scenes.py [--out DIR]

Files: PySceneDetect's own test clips (../shared/testdata/video: testvideo.mp4, counter.mp4,
fades.mp4) and a clip built on the fly whose five shots pan, fade in, change light and zoom
(tests/scene_clips.py). Ground truth is hard cuts only (first frame of the new shot); a fade or
dissolve is no cut, so a cut reported at the start of a fade counts as a false one.

Prints JSON: for each detector, precision / recall / F1 over all files at ±1 frame and at
±1.5 s, the cuts it reported per file, and its wall and CPU seconds. ``previous_1fps_histogram``
is the rule the analysis used before (HSV histograms of the 1 fps thumbnails, cut frame = the
grid frame). ``pyscenedetect`` is
``AdaptiveDetector()`` with its defaults through ``scenedetect.detect`` (PyAV backend off:
OpenCV, as upstream's goldens were made); ``matches_upstream_goldens`` checks that run against
the goldens shipped in ../shared/testdata/video/pyscenedetect_goldens.

PySceneDetect is a bench-only dependency, pinned in requirements-bench.txt. Install it with
``--no-deps``: its wheel requires a second OpenCV distribution next to the project's
opencv-contrib-python-headless (docs/architecture.md, Known traps).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scene_clips import HARD_CUTS, MOVING_CUTS, SHARED_VIDEO, moving_shots_clip  # noqa: E402
from workers import scenes  # noqa: E402


def _match(found: list[int], truth: list[int], tolerance: float, rate: float) -> int:
    """One-to-one matches within ``tolerance`` frames (greedy on sorted cuts)."""
    used: set[int] = set()
    hits = 0
    for cut in sorted(found):
        best = None
        for k, true in enumerate(truth):
            if k not in used and abs(cut - true) <= tolerance + 1e-9 and (
                    best is None or abs(cut - true) < abs(cut - truth[best])):
                best = k
        if best is not None:
            used.add(best)
            hits += 1
    return hits


def _scores(results: dict[str, list[int]], truth: dict[str, list[int]], rates: dict[str, float],
            tolerance_s: float | None) -> dict:
    tp = fp = fn = 0
    for name, found in results.items():
        tolerance = 1.0 if tolerance_s is None else tolerance_s * rates[name]
        hits = _match(found, truth[name], tolerance, rates[name])
        tp, fp, fn = tp + hits, fp + len(found) - hits, fn + len(truth[name]) - hits
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "true_positives": tp, "false_positives": fp, "missed": fn}


def _timed(run, files: dict[str, Path]) -> tuple[dict[str, list[int]], float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    cuts = {name: run(path) for name, path in files.items()}
    return cuts, time.perf_counter() - wall, time.process_time() - cpu


def ours(path: Path) -> list[int]:
    return [shot.start_frame for shot in scenes.detect_shots(path)[1:]]


def previous_1fps(path: Path) -> list[int]:
    """What the analysis stored before shots: HSV histograms of the 1 fps thumbnails."""
    import math

    from workers.media.frames import iter_frames
    from workers.media.probe import probe

    info = probe(path)
    features = [scenes.frame_features(frame.rgb(384)) for frame in iter_frames(info)]
    grid = scenes.detect_scenes(__import__("numpy").stack(features))
    # Grid index i stands for the first frame at or after i seconds.
    return [math.ceil(start * info.fps - 1e-6) for start, _ in grid[1:]]


def pyscenedetect(path: Path) -> list[int]:
    from scenedetect import AdaptiveDetector, detect

    return [start.frame_num for start, _ in detect(str(path), AdaptiveDetector())[1:]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, help="folder for the generated clip (default: a temporary one)")
    args = parser.parse_args()
    try:
        import scenedetect
    except ImportError:
        sys.exit("PySceneDetect is missing: .venv/bin/pip install --no-deps -r requirements-bench.txt")
    import av

    with tempfile.TemporaryDirectory() as tmp:
        files = {name: SHARED_VIDEO / name for name in HARD_CUTS}
        files["moving_shots.mp4 (generated)"] = moving_shots_clip(args.out or Path(tmp))
        truth = {**HARD_CUTS, "moving_shots.mp4 (generated)": MOVING_CUTS}
        rates = {}
        for name, path in files.items():
            with av.open(str(path)) as container:
                rates[name] = float(container.streams.video[0].average_rate)
        report: dict = {"ground_truth_cuts": truth, "pyscenedetect_version": scenedetect.__version__}
        for label, run in (("ours", ours), ("pyscenedetect_adaptive", pyscenedetect),
                           ("previous_1fps_histogram", previous_1fps)):
            cuts, wall, cpu = _timed(run, files)
            report[label] = {
                "within_1_frame": _scores(cuts, truth, rates, None),
                "within_1.5_s": _scores(cuts, truth, rates, 1.5),
                "cuts": cuts, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            }
        goldens = {name: json.loads((SHARED_VIDEO / "pyscenedetect_goldens" /
                                     f"{name}.AdaptiveDetector.default.json").read_text())["cuts"]
                   for name in HARD_CUTS}
        report["pyscenedetect_adaptive"]["matches_upstream_goldens"] = all(
            report["pyscenedetect_adaptive"]["cuts"][name] == golden for name, golden in goldens.items())
    print(json.dumps(report, indent=1, default=str).replace('\n    ', ' ').replace('\n   ]', ']'))


if __name__ == "__main__":
    main()
