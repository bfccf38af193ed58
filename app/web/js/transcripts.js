// Transcripts: search them, read one (each line seeks the player), export it on the server.
import { baseName, cacheDir, clock, el, post, say } from "./api.js";
import { play } from "./player.js";

const $ = (id) => document.getElementById(id);
let current = null;   // {path, segments}
const loaded = new Set();

async function loadTranscripts(dir) {
  if (loaded.has(dir)) return;
  await post("/analysis-data/load-transcriptions", { cache_dir: dir });
  loaded.add(dir);
}

async function searchTranscripts() {
  const status = $("transcript-status");
  const query = $("transcript-query").value.trim();
  const list = $("transcript-results");
  list.replaceChildren();
  if (!query) return;
  try {
    const dir = cacheDir();
    await loadTranscripts(dir);
    const reply = await post("/search/transcript", { cache_dir: dir, query, max_results: 100 });
    say(status, `${reply.matches.length} lines match “${query}”`);
    for (const match of reply.matches) {
      list.append(el("li", {}, el("button", { type: "button",
        "aria-label": `${baseName(match.media_path)} at ${clock(match.start_seconds)}: ${match.text}`,
        onclick: () => { read(match.media_path, match.start_seconds); } },
      el("span", { class: "time", text: `${baseName(match.media_path)} ${clock(match.start_seconds)}` }), match.text)));
    }
  } catch (err) {
    say(status, err.message, "error");
  }
}

async function read(path, seekTo) {
  const status = $("transcript-status");
  const list = $("transcript-lines");
  try {
    const reply = await post("/transcriptions", { cache_dir: cacheDir(), media_paths: [path] });
    const segments = reply.transcriptions[path] || [];
    current = { path, segments };
    $("transcript-file").value = path;
    list.replaceChildren(...segments.map(([start, text, end]) => el("li", {}, el("button", { type: "button",
      "data-seconds": String(start), "aria-label": `${clock(start)} ${text}`, onclick: () => play(path, start) },
    el("span", { class: "time", text: `${clock(start)}–${clock(end)}` }), text))));
    say(status, segments.length ? `${segments.length} lines of ${baseName(path)}` : `${baseName(path)} has no transcript in this cache folder`);
    if (seekTo !== undefined) play(path, seekTo);
  } catch (err) {
    say(status, err.message, "error");
  }
}

async function exportTranscript() {
  const status = $("transcript-status");
  if (!current || !current.segments.length) { say(status, "Read a transcript first", "error"); return; }
  const format = $("transcript-format").value;
  const body = { segments: current.segments.map(([start, text, end]) => [start, text, end]), format,
    display_name: baseName(current.path).replace(/\.[^.]+$/, "") };
  const output = $("transcript-output").value.trim();
  if (output) body.output_path = output;
  try {
    const reply = await post("/export/transcript", body);
    say(status, `Saved ${reply.row_count} rows as ${reply.format} to ${reply.output_path}`, "ok");
  } catch (err) {
    say(status, err.message, "error");
  }
}

// The line being played is marked, so a reader can follow along.
function follow() {
  const video = $("player");
  if (!current || video.dataset.path !== current.path) return;
  const t = video.currentTime;
  for (const button of $("transcript-lines").querySelectorAll("button")) {
    const [start, , end] = current.segments[[...button.parentNode.parentNode.children].indexOf(button.parentNode)] || [];
    if (start <= t && t < end) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

export function init() {
  $("player").addEventListener("timeupdate", follow);
  $("transcript-search-form").addEventListener("submit", (event) => { event.preventDefault(); searchTranscripts(); });
  $("transcript-open-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const path = $("transcript-file").value.trim();
    if (path) read(path);
  });
  $("transcript-export").addEventListener("click", exportTranscript);
  window.addEventListener("sightline:cache-changed", () => loaded.clear());
}
