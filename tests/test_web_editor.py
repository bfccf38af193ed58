"""The web page's Editor in a real headless Chromium against a real server and worker: sign in →
a project from counter.mp4 on the server (30 frames at 10 fps) → split it at a typed time → two
segments → a grade slider moved by keyboard brightens the live preview → export, progress to
completed, and the download is an mp4 with every frame; then the preview strip, an upload from
this computer, and Apply grade."""

from __future__ import annotations

import av
import pytest
import requests
from selenium.webdriver.common.keys import Keys

from tests.browser import Page, open_page

pytestmark = pytest.mark.browser

# Mean luma of a loaded <img> (its signed URL is same-origin, so the canvas is readable).
MEAN_LUMA = """
const img = document.getElementById(arguments[0]);
if (!img.complete || !img.naturalWidth) return null;
const c = document.createElement('canvas'); c.width = 64; c.height = 36;
const g = c.getContext('2d'); g.drawImage(img, 0, 0, 64, 36);
const d = g.getImageData(0, 0, 64, 36).data; let sum = 0;
for (let i = 0; i < d.length; i += 4) sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
return sum / (d.length / 4);"""


@pytest.fixture
def page(web_server, tmp_path):
    server, _, _ = web_server
    with open_page(server.base, tmp_path / "profile") as ui:
        yield ui


def _segments(page: Page) -> list[str]:
    return page.js("return [...document.querySelectorAll('#editor-segments button')].map(b => b.textContent)")


def test_editor_split_grade_preview_and_export(page, web_server):
    server, media_root, _ = web_server
    page.control("Licence key").send_keys(server.pro_key + Keys.ENTER)
    page.wait(lambda: page.statuses()["signin-status"] == "Signed in", 20, "signing in")
    page.tab("Editor").click()

    # A project from a file on the server: one segment, the whole 3 s.
    page.control("Video on the server").send_keys(str(media_root / "counter.mp4") + Keys.ENTER)
    page.wait(lambda: page.js("return document.body.dataset.editorSegments") == "1", 30, "the project")
    assert page.js("return document.getElementById('editor-duration').textContent") == "1 segment, 3.00 s"
    assert _segments(page) == ["Segment 1: 0.00–3.00 s"]

    # Split at a typed time (Enter submits): two segments, in order, with their timeline times.
    split_at = page.control("Split at (s)")
    split_at.clear()
    split_at.send_keys("1.2" + Keys.ENTER)
    page.wait(lambda: page.js("return document.body.dataset.editorSegments") == "2", 30, "the split")
    assert _segments(page) == ["Segment 1: 0.00–1.20 s", "Segment 2: 1.20–3.00 s"]
    assert page.statuses()["editor-status"] == "Split at 1.20 s"

    # The grade preview shows the selected segment; Brightness moved by keyboard makes it brighter.
    page.wait(lambda: page.js(MEAN_LUMA, "editor-grade-preview") is not None, 30, "the grade preview")
    before = page.js(MEAN_LUMA, "editor-grade-preview")
    box = page.js("const r = document.getElementById('editor-grade-preview').parentNode.getBoundingClientRect();"
                  "return [r.width, r.height]")
    first_src = page.js("return document.getElementById('editor-grade-preview').src")
    brightness = page.control("Brightness")
    for _ in range(8):
        brightness.send_keys(Keys.ARROW_RIGHT)
    assert page.js("return document.getElementById('grade-brightness-value').textContent") == "0.40"
    page.wait(lambda: page.js("const i = document.getElementById('editor-grade-preview');"
                              "return i.src !== arguments[0] && i.dataset.grade && "
                              "JSON.parse(i.dataset.grade).brightness === 0.4", first_src), 30, "the graded preview")
    page.wait(lambda: page.js(MEAN_LUMA, "editor-grade-preview") is not None, 30, "the graded preview to load")
    after = page.js(MEAN_LUMA, "editor-grade-preview")
    assert after > before + 20, (before, after)
    # Fixed-size boxes: the picture arriving moved nothing; and no sideways scrolling at 1280×800.
    assert page.js("const r = document.getElementById('editor-grade-preview').parentNode.getBoundingClientRect();"
                   "return [r.width, r.height]") == box
    assert page.js("return document.documentElement.scrollWidth") <= 1280
    nameless = [e.get_attribute("id") for e in page.driver.find_elements(
        "css selector", "#editor input, #editor select, #editor button") if e.is_displayed()
        and not e.accessible_name.strip()]
    assert not nameless, nameless

    # Export: the progress bar reaches 100 and the download link gives the whole cut.
    page.control("Export mp4").click()
    page.wait(lambda: page.js("return document.body.dataset.editorExport") in ("completed", "failed"), 240,
              "the export")
    assert page.js("return document.body.dataset.editorExport") == "completed", page.statuses()
    assert page.js("return document.getElementById('editor-export-progress').value") == 100
    assert page.statuses()["editor-export-status"].startswith("Export completed: 3.0")
    link = page.driver.find_element("id", "editor-download")
    assert link.is_displayed() and link.accessible_name == "Download export"
    # The preview strip: a frame every half second of the cut, each a button that moves the playhead.
    page.control("Show preview strip").click()
    page.wait(lambda: page.js("const imgs = [...document.querySelectorAll('#editor-strip img')];"
                              "return imgs.length === 6 && imgs.every(i => i.complete && i.naturalWidth)"), 60,
              "the strip")
    shown = page.js("return ['editor-frame', 'editor-grade-preview'].map(id => document.getElementById(id).src)")
    page.control("Playhead to 1.50 s").send_keys(Keys.ENTER)
    assert page.js("return document.getElementById('editor-playhead-value').textContent") == "1.50 s"
    # Both previews follow the playhead (into segment 2, now selected).
    page.wait(lambda: page.js("return ['editor-frame', 'editor-grade-preview'].every((id, n) => {"
                              "const i = document.getElementById(id);"
                              "return i.src !== arguments[0][n] && i.complete && i.naturalWidth; })", shown), 30,
              "the previews at the playhead")
    assert page.js("return document.querySelector('#editor-segments [aria-pressed=true]').textContent") == \
        "Segment 2: 1.20–3.00 s"
    page.screenshot("editor")
    response = requests.get(link.get_attribute("href"), timeout=60)
    assert response.status_code == 200 and response.content[4:8] == b"ftyp"
    path = page.shots / "editor-export.mp4"
    path.write_bytes(response.content)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 30

    # An upload from this computer lands at the end of the timeline.
    page.control("Video to upload").send_keys(str(media_root / "counter.mp4"))
    page.control("Upload").click()
    page.wait(lambda: page.js("return document.body.dataset.editorSegments") == "3", 60, "the upload")
    assert page.statuses()["editor-status"] == "Uploaded counter.mp4"
    assert _segments(page)[2] == "Segment 3: 3.00–6.00 s"

    # Apply grade: the selected segment is replaced in place by its graded render.
    page.control("Apply grade").click()
    page.wait(lambda: page.statuses()["editor-status"] == "Grade applied"
              or page.js("return document.getElementById('editor-status').className") == "error", 120, "the grade")
    assert page.statuses()["editor-status"] == "Grade applied"
    rows = page.js("return [...document.querySelectorAll('#editor-segments li')].map(li => li.textContent)")
    assert len(rows) == 3 and rows[1].startswith("Segment 2: 1.20–3.00 s") and rows[1].endswith("(graded)"), rows
    assert page.js("return document.querySelector('#editor-segments [aria-pressed=true]').textContent") == \
        "Segment 2: 1.20–3.00 s"
    assert page.js("return document.getElementById('grade-brightness-value').textContent") == "0.00"
