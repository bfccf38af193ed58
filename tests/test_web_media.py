"""What the web page needs from the server beside Jumper's API: the page itself (public, with
cache headers), media streamed with HTTP Range for the <video> element, a browser of the media
roots, and uploaded reference images for /search/image. All on a real server whose media roots
are set, so every path outside them must be refused."""

from __future__ import annotations

import base64
import io
import shutil

import requests
from PIL import Image


def test_the_page_is_public_and_served_with_validators(web_server):
    server, _, _ = web_server
    page = requests.get(server.base + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert 'label for="licence-key">Licence key<' in page.text
    assert page.headers["Cache-Control"] == "no-cache" and page.headers.get("ETag")
    again = requests.get(server.base + "/", headers={"If-None-Match": page.headers["ETag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b""

    module = requests.get(server.base + "/ui/js/app.js", timeout=10)
    assert module.status_code == 200 and "javascript" in module.headers["Content-Type"]
    vendor = requests.get(server.base + "/ui/vendor/socket.io.min.js", timeout=10)
    assert vendor.status_code == 200 and "max-age=86400" in vendor.headers["Cache-Control"]
    assert "Socket.IO v4" in vendor.text[:200]
    assert requests.get(server.base + "/ui/vendor/socket.io-client.LICENSE", timeout=10).status_code == 200
    # The page is public; the API behind it is not.
    assert requests.get(server.base + "/ui/../app/auth.py", timeout=10).status_code == 404
    assert requests.get(server.api + "/media/browse", timeout=10).status_code == 401


def test_range_requests_get_206_with_exactly_those_bytes(web_server):
    server, media_root, _ = web_server
    path = media_root / "testvideo.mp4"
    content = path.read_bytes()
    url = server.api + "/media/stream"
    # The <video> element cannot send headers: the key comes in the query string.
    params = {"path": str(path), "license_key": server.pro_key}

    whole = requests.get(url, params=params, timeout=30)
    assert whole.status_code == 200 and whole.content == content
    assert whole.headers["Content-Type"] == "video/mp4" and whole.headers["Accept-Ranges"] == "bytes"

    part = requests.get(url, params=params, headers={"Range": "bytes=1000-1999"}, timeout=30)
    assert part.status_code == 206
    assert part.content == content[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(content)}"

    tail = requests.get(url, params=params, headers={"Range": "bytes=-500"}, timeout=30)
    assert tail.status_code == 206 and tail.content == content[-500:]
    open_ended = requests.get(url, params=params, headers={"Range": f"bytes={len(content) - 10}-"}, timeout=30)
    assert open_ended.status_code == 206 and open_ended.content == content[-10:]

    beyond = requests.get(url, params=params, headers={"Range": f"bytes={len(content) + 10}-"}, timeout=30)
    assert beyond.status_code == 416

    assert requests.get(url, params={"path": str(path)}, timeout=10).status_code == 401


def test_streaming_refuses_paths_outside_the_media_roots(web_server, tmp_path):
    server, media_root, export_root = web_server
    outside = tmp_path / "private.mp4"
    shutil.copy(media_root / "counter.mp4", outside)
    escape = f"{media_root}/../../{outside.relative_to(outside.anchor)}"
    for path in (str(outside), escape, str(export_root)):
        response = server.get("/media/stream", params={"path": path})
        assert response.status_code == 403, (path, response.text)
        assert "outside the allowed media roots" in response.json()["error"]
    link = media_root / "link-out.mp4"
    link.symlink_to(outside)
    try:
        assert server.get("/media/stream", params={"path": str(link)}).status_code == 403
    finally:
        link.unlink()
    assert server.get("/media/stream", params={"path": str(media_root / "missing.mp4")}).status_code == 404
    assert server.get("/media/stream", params={"path": "relative.mp4"}).status_code == 400


def test_browse_lists_the_roots_folders_and_media_files_only(web_server):
    server, media_root, _ = web_server
    (media_root / "sub").mkdir(exist_ok=True)
    (media_root / "notes.txt").write_text("not media")
    roots = server.get("/media/browse").json()
    assert roots["path"] is None and roots["roots"] == [str(media_root)]
    assert [e["path"] for e in roots["entries"]] == [str(media_root)]

    listing = server.get("/media/browse", params={"path": str(media_root)}).json()
    names = {e["name"]: e for e in listing["entries"]}
    assert names["sub"]["kind"] == "folder"
    assert names["testvideo.mp4"]["kind"] == "video"
    assert names["testvideo.mp4"]["size"] == (media_root / "testvideo.mp4").stat().st_size
    assert names["jfk.flac"]["kind"] == "audio"
    assert "notes.txt" not in names
    assert listing["parent"] is None  # a root: no way up out of it

    sub = server.get("/media/browse", params={"path": str(media_root / "sub")}).json()
    assert sub["parent"] == str(media_root)

    assert server.get("/media/browse", params={"path": str(media_root.parent)}).status_code == 403
    assert server.get("/media/browse", params={"path": "/"}).status_code == 403
    assert server.get("/media/browse", params={"path": str(media_root / "testvideo.mp4")}).status_code == 404


def test_an_uploaded_reference_image_is_searchable(web_server):
    server, media_root, export_root = web_server
    cache = export_root / "upload-cache"
    server.wait_idle()
    _, events = server.analyze({"cache_dir": str(cache), "visual_media_paths": [str(media_root / "fades.mp4")]})
    assert events[-1]["status"] == "completed", events[-1]
    assert server.post("/analysis-data/load", {"cache_dir": str(cache)}).status_code == 200

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, "PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    stored = server.post("/media/reference-image", {"image_base64": f"data:image/png;base64,{data}"})
    assert stored.status_code == 201, stored.text
    image_path = stored.json()["image_path"]
    assert not image_path.startswith(str(media_root))  # kept in the data folder, outside the roots
    found = server.post("/search/image", {"cache_dir": str(cache), "image_path": image_path, "search_all": True})
    assert found.status_code == 200, found.text
    assert found.json()["matches"] and found.json()["matches"][0]["video_path"] == str(media_root / "fades.mp4")

    same = server.post("/media/reference-image", {"image_base64": data}).json()["image_path"]
    assert same == image_path  # content-addressed
    bad = server.post("/media/reference-image", {"image_base64": base64.b64encode(b"not an image").decode()})
    assert bad.status_code == 400 and "not an image" in bad.json()["error"]
    # Any other path outside the roots stays refused.
    outside = server.post("/search/image", {"cache_dir": str(cache), "image_path": "/etc/hostname", "search_all": True})
    assert outside.status_code == 403
