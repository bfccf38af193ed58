"""Visual search issue, through HTTP: analyse real files with a tiny imported model, load,
search by text / image / frame, thumbnails and scene strips, model switching."""

from __future__ import annotations

import base64
import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
import requests
from PIL import Image

from schemas.search import VisualSearchResponse
from tests.conftest import DATA, sightline

HHMMSS = r"^\d\d:\d\d:\d\d$"


def _decode_jpeg(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "JPEG"
    return image


def _make_long_video(path: Path, seconds: int = 130) -> None:
    """A small video long enough for a scene strip to be sampled (≥ 100 s)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=2)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(seconds * 2):
            shade = (i * 3) % 255
            frame = av.VideoFrame.from_ndarray(np.full((96, 160, 3), (shade, 80, 255 - shade), np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def library(server, tmp_path_factory):
    """Four analysed files (three videos and a photo) plus an audio file, loaded for search."""
    root = tmp_path_factory.mktemp("library")
    files = {name: Path(shutil.copy(DATA / name, root / name)) for name in
             ("counter.mp4", "fades.mp4", "testvideo.mp4", "jfk.flac")}
    photo = root / "photo.jpg"
    Image.new("RGB", (640, 480), (240, 200, 40)).save(photo)
    files["photo.jpg"] = photo
    long_video = root / "long.mp4"
    _make_long_video(long_video)
    files["long.mp4"] = long_video
    cache = root / "cache"
    server.wait_idle()
    visual = [str(files[n]) for n in ("counter.mp4", "fades.mp4", "testvideo.mp4", "photo.jpg", "long.mp4")]
    _, events = server.analyze({"cache_dir": str(cache), "visual_media_paths": visual})
    assert events[-1]["status"] == "completed", events[-1]
    return {"files": files, "cache": cache, "visual": visual}


def test_search_before_loading_is_a_clear_400(server, library, tmp_path):
    empty = tmp_path / "nothing-loaded"
    empty.mkdir()
    response = server.post("/search/text", {"query": "a leaf", "cache_dir": str(empty)})
    assert response.status_code == 400
    assert "/analysis-data/load" in response.json()["error"]


def test_load_then_text_search_returns_well_formed_matches(server, library):
    cache = str(library["cache"])
    loaded = server.post("/analysis-data/load", {"cache_dir": cache})
    assert loaded.status_code == 200 and loaded.json()["message"].startswith("Analysis data loaded in")
    response = server.post("/search/text", {"query": "a deer in a forest", "cache_dir": cache,
                                            "search_all": True, "max_results": 12})
    assert response.status_code == 200, response.text
    assert VisualSearchResponse().dump(response.json()) == response.json()  # the documented shape, no more
    matches = response.json()["matches"]
    assert len(matches) == 12
    assert sorted(m["original_index"] for m in matches) == list(range(12))
    for match in matches:
        assert isinstance(match["frame_idx"], str) and match["frame_idx"].isdigit()
        assert match["video_path"] in library["visual"]
        assert len(match["hash_str"]) == 16
        for key in ("timestamp", "scene_start_timestamp", "scene_end_timestamp"):
            assert len(match[key]) == 8 and match[key][2] == ":" and match[key][5] == ":"
        assert match["scene_start_timestamp"] <= match["timestamp"] <= match["scene_end_timestamp"]
        assert _decode_jpeg(match["image"]).size[0] > 0
        assert "score" not in match
    # Per-video grouping: each video's matches are contiguous.
    order = [m["hash_str"] for m in matches]
    assert all(order.index(h) + order.count(h) - 1 == max(i for i, x in enumerate(order) if x == h) for h in order)


def test_concurrent_text_searches_each_get_the_answer_they_get_alone(server, library):
    """Searches that arrive together share the query worker's encoder passes; none may get
    a neighbour's answer or a different one from its own alone."""
    cache = str(library["cache"])
    server.post("/analysis-data/load", {"cache_dir": cache})
    texts = ["a deer in a forest", "numbers on a screen", "a leaf", "yellow", "a dark room at night",
             "two people talking in an office kitchen", "red", "the sea"]

    def search(text: str) -> dict:
        response = requests.post(f"{server.api}/search/text", timeout=60, headers={"X-License-Key": server.pro_key},
                                 json={"query": text, "cache_dir": cache, "search_all": True, "max_results": 20})
        assert response.status_code == 200, response.text
        return response.json()

    alone = {text: search(text) for text in texts}
    assert len({json.dumps(a) for a in alone.values()}) > 1  # the texts do rank differently
    for _ in range(2):
        with ThreadPoolExecutor(len(texts)) as pool:
            together = dict(zip(texts, pool.map(search, texts), strict=True))
        for text in texts:
            assert [(m["video_path"], m["frame_idx"]) for m in together[text]["matches"]] == \
                [(m["video_path"], m["frame_idx"]) for m in alone[text]["matches"]], text
            assert together[text] == alone[text], text


def test_media_paths_restrict_and_unknown_media_are_named(server, library, tmp_path):
    cache = str(library["cache"])
    server.post("/analysis-data/load", {"cache_dir": cache})
    counter = str(library["files"]["counter.mp4"])
    only = server.post("/search/text", {"query": "numbers", "cache_dir": cache, "media_paths": [counter]})
    assert only.status_code == 200
    assert {m["video_path"] for m in only.json()["matches"]} == {counter}
    assert len(only.json()["matches"]) == 3  # counter.mp4 is 3 s: three frames on the 1 fps grid
    stranger = tmp_path / "never-analysed.mp4"
    shutil.copy(DATA / "counter.mp4", stranger)
    stranger.write_bytes(stranger.read_bytes() + b"\0")
    missing = server.post("/search/text", {"query": "x", "cache_dir": cache,
                                           "media_paths": [counter, str(stranger), str(tmp_path / "gone.mp4")]})
    assert missing.status_code == 400
    assert "never-analysed.mp4" in missing.json()["error"] and "gone.mp4" in missing.json()["error"]


def test_frame_search_finds_that_frame_first(server, library):
    cache = str(library["cache"])
    server.post("/analysis-data/load", {"cache_dir": cache})
    counter = str(library["files"]["counter.mp4"])
    for seconds, expected in ((1.4, "1"), (2.0, "2")):
        response = server.post("/search/frame", {"media_path": counter, "time_seconds": seconds,
                                                 "cache_dir": cache, "search_all": True, "max_results": 5})
        assert response.status_code == 200, response.text
        first = min(response.json()["matches"], key=lambda m: m["original_index"])
        assert (first["video_path"], first["frame_idx"]) == (counter, expected)


def test_image_search_finds_the_frame_it_was_cut_from(server, library, tmp_path):
    cache = str(library["cache"])
    server.post("/analysis-data/load", {"cache_dir": cache})
    counter = str(library["files"]["counter.mp4"])
    with av.open(counter) as container:
        frames = [f for f in container.decode(video=0)]
    reference = tmp_path / "reference.png"
    frames[20].to_image().save(reference)  # 2.0 s
    response = server.post("/search/image", {"image_path": str(reference), "cache_dir": cache,
                                             "search_all": True, "max_results": 3})
    assert response.status_code == 200, response.text
    first = min(response.json()["matches"], key=lambda m: m["original_index"])
    assert (first["video_path"], first["frame_idx"]) == (counter, "2")
    combined = server.post("/search/image", {"image_path": str(reference), "query": "numbers", "exclude": ["red"],
                                             "cache_dir": cache, "search_all": True})
    assert combined.status_code == 200
    no_query = server.post("/search/image", {"image_path": str(reference), "exclude": ["red"], "cache_dir": cache})
    assert no_query.status_code == 400 and "exclude" in no_query.json()["error"]


def test_exclude_pushes_down_but_never_removes(server, library):
    cache = str(library["cache"])
    server.post("/analysis-data/load", {"cache_dir": cache})
    body = {"query": "a tyre tread", "cache_dir": cache, "search_all": True, "max_results": 1000}
    plain = server.post("/search/text", body).json()["matches"]
    pushed = server.post("/search/text", {**body, "exclude": ["bright numbers", "water"]}).json()["matches"]
    key = lambda m: (m["hash_str"], m["frame_idx"])  # noqa: E731
    assert {key(m) for m in plain} == {key(m) for m in pushed}
    plain_rank = {key(m): m["original_index"] for m in plain}
    pushed_rank = {key(m): m["original_index"] for m in pushed}
    assert plain_rank != pushed_rank


def test_thumbnails_and_scene_strips(server, library):
    cache = str(library["cache"])
    files = library["files"]
    response = server.post("/thumbnails", {"cache_dir": cache, "requests": [
        {"media_path": str(files["testvideo.mp4"]), "time_seconds": 3},
        {"media_path": str(files["jfk.flac"]), "time_seconds": 1},
        {"media_path": str(files["photo.jpg"]), "time_seconds": 0},
    ]})
    assert response.status_code == 200, response.text
    thumbs = response.json()["thumbnails"]
    assert _decode_jpeg(thumbs[0]["thumbnail"]).size == (384, 216)
    assert thumbs[1]["thumbnail"] is None
    assert _decode_jpeg(thumbs[2]["thumbnail"]).size[0] > 0

    strip = server.post("/thumbnails/scene", {"cache_dir": cache, "media_path": str(files["testvideo.mp4"]),
                                              "start_time": "00:00:02", "end_time": "00:00:06"}).json()
    assert [t for _, t in strip["scene_thumbnails"]] == [f"00:00:0{i}" for i in range(2, 7)]
    long_strip = server.post("/thumbnails/scene", {"cache_dir": cache, "media_path": str(files["long.mp4"]),
                                                   "start_time": "00:00:00", "end_time": "00:02:09"}).json()
    times = [t for _, t in long_strip["scene_thumbnails"]]
    assert len(times) == 100 and times[0] == "00:00:00" and times[-1] == "00:02:09"
    assert times == sorted(times)
    bad = server.post("/thumbnails/scene", {"cache_dir": cache, "media_path": str(files["long.mp4"]),
                                            "start_time": "later", "end_time": "00:00:05"})
    assert bad.status_code == 400


def test_load_for_media_skips_loaded_files_and_names_unanalysed(server, library, tmp_path):
    cache = str(library["cache"])
    counter = str(library["files"]["counter.mp4"])
    first = server.post("/analysis-data/load-for-media", {"cache_dir": cache, "media_paths": [counter]})
    assert first.status_code == 200
    again = server.post("/analysis-data/load-for-media", {"cache_dir": cache, "media_paths": [counter]}).json()
    assert again["message"].startswith("Loaded analysis data for 0 files")
    lone = tmp_path / "lone.jpg"
    Image.new("RGB", (50, 50)).save(lone)
    unanalysed = server.post("/analysis-data/load-for-media", {"cache_dir": cache, "media_paths": [str(lone)]})
    assert unanalysed.status_code == 400 and "lone.jpg" in unanalysed.json()["error"]


def test_models_switch_keeps_embeddings_per_model_and_reuses_thumbnails(server, library, tmp_path):
    from tests.tiny_models import build_tiny_siglip

    source = build_tiny_siglip(tmp_path / "siglip-src")
    result = sightline("models", "import", "tiny-siglip", str(source), env=server.env, check=False)
    assert result.returncode == 0, result.stderr
    available = server.get("/models/available").json()
    assert "tiny-siglip" in available["supported_models"] and "tiny-siglip" in available["downloaded_models"]
    cache = library["cache"]
    counter = str(library["files"]["counter.mp4"])
    counter_hash = server.post("/media/metadata", {"cache_dir": str(cache), "media_paths": [counter]}).json()[
        "media_properties"][counter]["hash_str"]
    pack = cache / counter_hash / "frames.pack"
    pack_mtime = pack.stat().st_mtime_ns
    server.wait_idle()
    try:
        switched = server.post("/models/load", {"model_key": "tiny-siglip"})
        assert switched.status_code == 200 and switched.json()["loaded_model"] == "tiny-siglip"
        assert server.get("/models/loaded").json()["visual"]["model_key"] == "tiny-siglip"
        # Loaded data was cleared with the switch.
        assert server.post("/search/text", {"query": "x", "cache_dir": str(cache)}).status_code == 400
        meta = server.post("/media/metadata", {"cache_dir": str(cache), "media_paths": [counter]}).json()
        assert meta["media_properties"][counter]["video_cached"] is False
        _, events = server.analyze({"cache_dir": str(cache), "visual_media_paths": [counter]})
        assert events[-1]["status"] == "completed"
        assert pack.stat().st_mtime_ns == pack_mtime, "thumbnails must be reused, not decoded again"
        server.post("/analysis-data/load", {"cache_dir": str(cache)})
        found = server.post("/search/text", {"query": "x", "cache_dir": str(cache), "media_paths": [counter]})
        assert found.status_code == 200 and len(found.json()["matches"]) == 3
    finally:
        back = server.post("/models/load", {"model_key": "tiny-clip"})
        assert back.status_code == 200
    meta = server.post("/media/metadata", {"cache_dir": str(cache), "media_paths": [counter]}).json()
    assert meta["media_properties"][counter]["video_cached"] is True  # no re-analysis needed
