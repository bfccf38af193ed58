// Search: text, a reference image (uploaded or a server path) or "more like this" on a result;
// exclude terms, a people filter, a media restriction. Results are a grid of fixed-size cards.
import { ApiError, baseName, cacheDir, el, ensureLoaded, get, post, say, seconds } from "./api.js";
import { play } from "./player.js";
import { addToBin } from "./export.js";

const $ = (id) => document.getElementById(id);

function filters() {
  const body = { cache_dir: cacheDir(), max_results: 48 };
  const exclude = $("search-exclude").value.split(",").map((t) => t.trim()).filter(Boolean);
  if (exclude.length) body.exclude = exclude;
  const media = $("search-media").value.split("\n").map((t) => t.trim()).filter(Boolean);
  if (media.length) body.media_paths = media;
  else body.search_all = true;
  return body;
}

function peopleFilter() {
  return [...$("people-filter").selectedOptions].map((option) => JSON.parse(option.value));
}

async function run(path, body, label) {
  const status = $("search-status");
  say(status, `Searching ${label}…`);
  document.body.dataset.search = "running";
  const started = performance.now();
  try {
    await ensureLoaded(body.cache_dir);
    const loadedAt = performance.now();
    const reply = await post(path, body);
    document.body.dataset.loadMs = String(Math.round(loadedAt - started));
    render(reply.matches || []);
    const ms = Math.round(performance.now() - started);
    say(status, `${reply.matches.length} results for ${label} (${ms} ms)`);
    document.body.dataset.search = "done";
    document.body.dataset.searchMs = String(ms);
  } catch (err) {
    say(status, err.message, "error");
    document.body.dataset.search = "failed";
  }
}

function render(matches) {
  const list = $("results");
  list.replaceChildren();
  for (const match of matches) {
    const name = baseName(match.video_path);
    const at = seconds(match.timestamp);
    const scene = { start: match.scene_start_timestamp, end: match.scene_end_timestamp };
    list.append(el("li", { class: "card" },
      el("button", { type: "button", class: "play", "aria-label": `Play ${name} at ${match.timestamp}`,
        "data-seconds": String(at), onclick: () => play(match.video_path, at, scene) },
      el("img", { class: "thumb", alt: "", src: match.image ? `data:image/jpeg;base64,${match.image}` : undefined }),
      el("div", { class: "meta" },
        el("div", { class: "file", title: match.video_path, text: name }),
        el("div", { text: match.timestamp }),
        el("div", { class: "muted", text: `scene ${scene.start}–${scene.end}` }))),
      el("div", { class: "actions" },
        el("button", { type: "button", text: "Similar", "aria-label": `More like ${name} at ${match.timestamp}`,
          onclick: () => moreLike(match.video_path, at) }),
        el("button", { type: "button", text: "+ Bin", "aria-label": `Add ${name} at ${match.timestamp} to bin`,
          onclick: () => addToBin({ path: match.video_path, seconds: at }) }))));
  }
}

function textSearch() {
  const query = $("search-text").value.trim();
  if (!query) { say($("search-status"), "Type what to find", "error"); return; }
  let body;
  try { body = { ...filters(), query }; } catch (err) { say($("search-status"), err.message, "error"); return; }
  const people = peopleFilter();
  if (people.length) {
    body.people_filter = people;
    body.people_filter_mode = $("people-mode").value;
  }
  run("/search/text", body, `“${query}”`);
}

function moreLike(path, at) {
  let body;
  try { body = { ...filters(), media_path: path, time_seconds: at }; } catch (err) { say($("search-status"), err.message, "error"); return; }
  const query = $("search-text").value.trim();
  if (query) body.query = query;
  else delete body.exclude;
  run("/search/frame", body, `frames like ${baseName(path)} at ${at}s`);
}

async function imageSearch() {
  const status = $("search-status");
  let imagePath = $("reference-path").value.trim();
  const file = $("reference-upload").files[0];
  try {
    if (file) {
      const data = await new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(String(reader.result));
        reader.onerror = () => reject(new ApiError(0, "The image cannot be read"));
        reader.readAsDataURL(file);
      });
      imagePath = (await post("/media/reference-image", { image_base64: data })).image_path;
    }
    if (!imagePath) throw new ApiError(0, "Choose a reference image or type its path on the server");
    const body = { ...filters(), image_path: imagePath };
    const query = $("search-text").value.trim();
    if (query) body.query = query;
    else delete body.exclude;
    run("/search/image", body, `images like ${file ? file.name : baseName(imagePath)}`);
  } catch (err) {
    say(status, err.message, "error");
  }
}

// The people filter lists every named cluster of every face job in the cache folder.
export async function refreshPeople() {
  const select = $("people-filter");
  let dir;
  try { dir = cacheDir(); } catch { return; }
  const options = [];
  try {
    const jobs = await get("/faces/clusters", { cache_dir: dir });
    for (const job of jobs.cluster_jobs || []) {
      const samples = await post("/faces/clusters/samples", { cache_dir: dir, cluster_job_name: job, limit_per_cluster: 0 });
      const names = new Set((samples.clusters || []).map((c) => c.name).filter(Boolean));
      for (const name of names) {
        options.push(el("option", { value: JSON.stringify({ cluster_job_name: job, person_name: name }),
          text: jobs.cluster_jobs.length > 1 ? `${name} (${job})` : name }));
      }
    }
  } catch { /* no face jobs yet: an empty filter */ }
  const chosen = new Set([...select.selectedOptions].map((o) => o.value));
  for (const option of options) option.selected = chosen.has(option.value);
  select.replaceChildren(...options);
}

export function init() {
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); textSearch(); });
  $("search-image").addEventListener("click", imageSearch);
  window.addEventListener("sightline:cache-changed", refreshPeople);
  window.addEventListener("sightline:people-changed", refreshPeople);
}

export function shown() {
  refreshPeople();
}
