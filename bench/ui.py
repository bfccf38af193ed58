"""The web page's weight and speed, in a real headless Chromium against a real server.

    python bench/ui.py [--hours 100] [--searches 5]

Builds a synthetic cache of ``--hours`` of footage (30-minute files, one embedding per second,
shots of ~12 near-identical frames; thumbnails are 384×216 JPEGs at the server's default
quality, a few distinct ones per file), starts ``sightline serve`` with a tiny CLIP as the
visual model (the search path is the real one; only the text encoder is small), then in a
fresh browser profile (empty cache):

- ``first_load``: bytes the page transferred until it was ready (HTML, CSS, modules, the
  vendored socket.io client), from the Resource Timing API, and how long that took;
- ``first_search``: from pressing Enter in "Search" to the grid of results on screen, for the
  first search (the page asks the server to load the cache first) and the later ones.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import Page, make_driver  # noqa: E402
from tests.conftest import sightline, start_server  # noqa: E402
from tests.tiny_models import build_tiny_clip  # noqa: E402
from workers import store  # noqa: E402

FILE_SECONDS = 1800
SHOT = 12
MODEL_KEY = "tiny-clip"
QUERIES = ["a dog on a beach", "two people talking", "a city street at night", "snow on mountains",
           "a red car", "children playing"]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _thumbnails(rng: np.random.Generator, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        base = rng.integers(30, 220, 3)
        ramp = np.linspace(0, 1, 384)[None, :, None]
        pixels = base * (0.6 + 0.4 * ramp) + rng.normal(0, 18, (216, 384, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=65, optimize=True)
        out.append(buffer.getvalue())
    return out


def build_cache(cache: Path, hours: int, dim: int, seed: int = 0) -> dict:
    """``hours`` of synthetic analysed footage in Jumper's layout, as the pipeline writes it."""
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((3000, dim)))
    offset = _unit(rng.standard_normal(dim))
    files = hours * 3600 // FILE_SECONDS
    thumbs = _thumbnails(rng, 8)
    for number in range(files):
        hash_str = f"{number:016x}"
        folder = store.visual_dir(cache, hash_str)
        folder.mkdir(parents=True, exist_ok=True)
        shots = FILE_SECONDS // SHOT
        content = _unit(topics[rng.integers(0, len(topics), shots)] + 0.9 * _unit(rng.standard_normal((shots, dim))))
        frames = np.repeat(content, SHOT, axis=0) + 0.3 * _unit(rng.standard_normal((FILE_SECONDS, dim)))
        embeddings = _unit(0.9 * offset + _unit(frames)).astype(np.float16)
        store.atomic_save_npy(store.embeddings_file(cache, hash_str, MODEL_KEY), embeddings)
        # A few distinct thumbnails per file, each frame pointing at its shot's one.
        chosen = [thumbs[(number + k) % len(thumbs)] for k in range(4)]
        (folder / store.FRAMES_PACK).write_bytes(b"".join(chosen))
        starts = np.cumsum([0] + [len(b) for b in chosen])[:-1]
        which = (np.arange(FILE_SECONDS) // SHOT) % len(chosen)
        np.save(folder / store.FRAMES_INDEX, np.stack([starts[which], [len(chosen[w]) for w in which]], 1).astype(np.int64))
        manifest = {
            "format_version": store.VISUAL_FORMAT_VERSION, "hash_str": hash_str,
            "media_path": f"/footage/reel-{number:04d}.mp4", "kind": "video", "duration": float(FILE_SECONDS),
            "fps": 25.0, "width": 1920, "height": 1080, "frame_count": FILE_SECONDS, "frames_complete": True,
            "scenes": [[s, min(s + SHOT, FILE_SECONDS) - 1] for s in range(0, FILE_SECONDS, SHOT)],
            "embeddings": {MODEL_KEY: {"file": store.embeddings_file(cache, hash_str, MODEL_KEY).name, "dim": dim}},
        }
        store.atomic_write_json(folder / store.MANIFEST, manifest)
    return {"files": files, "frames": files * FILE_SECONDS, "hours": hours, "dim": dim}


def _model_dim(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text())
    return int(config["projection_dim"])


def _search(page: Page, query: str) -> tuple[float, float]:
    """Seconds from Enter to results on screen, and of those, the page's wait for /analysis-data/load."""
    box = page.control("Search")
    box.clear()
    page.js("document.body.dataset.search = ''")
    started = time.monotonic()
    box.send_keys(query + "\n")
    page.wait(lambda: page.js("return document.body.dataset.search") in ("done", "failed"), 600, "search")
    elapsed = time.monotonic() - started
    assert page.js("return document.body.dataset.search") == "done", page.statuses()
    page.wait(lambda: page.driver.find_elements("css selector", "#results .card"), 30, "results on screen")
    return elapsed, int(page.js("return document.body.dataset.loadMs")) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=100)
    parser.add_argument("--searches", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sightline-bench-ui-"))
    server = driver = None
    try:
        model_dir = build_tiny_clip(tmp / "tiny-clip")
        cache = tmp / "cache"
        started = time.monotonic()
        facts = build_cache(cache, args.hours, _model_dim(model_dir))
        facts["build_seconds"] = round(time.monotonic() - started, 1)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")},
               "SIGHTLINE_HOME": str(tmp / "srv" / "home"), "SIGHTLINE_MODELS_DIR": str(tmp / "srv" / "home" / "models")}
        sightline("models", "import", MODEL_KEY, str(model_dir), env=env)
        server = start_server(tmp / "srv")

        driver = make_driver(tmp / "profile")
        page = Page(driver, tmp / "shots")
        load_started = time.monotonic()
        driver.get(server.base + "/")
        page.wait(lambda: page.js("return document.body.dataset.ready"), 60, "the page")
        load_seconds = time.monotonic() - load_started
        weight = page.js("""
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource');
            const all = [nav, ...res];
            return {transfer: all.reduce((s, e) => s + e.transferSize, 0),
                    decoded: all.reduce((s, e) => s + e.decodedBodySize, 0),
                    requests: all.length,
                    files: Object.fromEntries(all.map(e => [new URL(e.name).pathname, e.transferSize]))};""")
        page.control("Licence key").send_keys(server.pro_key + "\n")
        page.wait(lambda: page.statuses()["signin-status"] == "Signed in", 30, "signing in")
        page.control("Cache folder").send_keys(str(cache) + "\t")
        page.tab("Search").click()
        first, first_load = _search(page, QUERIES[0])
        later = [_search(page, QUERIES[1 + i % (len(QUERIES) - 1)])[0] for i in range(max(0, args.searches - 1))]
        results = len(driver.find_elements("css selector", "#results .card"))
        print(json.dumps({
            "what": "web page in headless Chromium against sightline serve (tiny CLIP text encoder)",
            "cache": facts,
            "first_load": {"transfer_bytes": weight["transfer"], "decoded_bytes": weight["decoded"],
                           "requests": weight["requests"], "seconds": round(load_seconds, 3),
                           "files": weight["files"]},
            "first_search": {"seconds": round(first, 3), "of_which_loading_the_cache_seconds": round(first_load, 3),
                             "includes": "/analysis-data/load (the query worker reads the embeddings and loads the "
                                         "model), /search/text, rendering the grid", "results_on_screen": results},
            "later_searches": {"median_seconds": round(statistics.median(later), 3) if later else None,
                               "max_seconds": round(max(later), 3) if later else None, "count": len(later)},
        }, indent=1))
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
