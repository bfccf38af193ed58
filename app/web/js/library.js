// Library: browse the server's media roots (or a typed path), queue files, choose what to
// run, start, follow each file's progress over Socket.IO, cancel.
import { baseName, cacheDir, el, follow, forgetLoaded, get, post, say } from "./api.js";

const $ = (id) => document.getElementById(id);
let listing = null;        // the folder shown: {path, parent, entries}
const queue = new Map();   // path -> kind
let currentTask = null;

async function browse(path) {
  const status = $("browse-status");
  try {
    listing = await get("/media/browse", path ? { path } : {});
  } catch (err) {
    say(status, err.message, "error");
    return;
  }
  $("browse-path").value = listing.path || "";
  $("browse-up").disabled = !listing.parent;
  const list = $("browse-list");
  list.replaceChildren();
  if (!listing.path && !listing.roots.length) {
    say(status, "No media roots are set on this server: type a folder path and press Open.", "muted");
    return;
  }
  say(status, listing.path ? `${listing.entries.length} items` : "Media roots", "muted");
  for (const entry of listing.entries) {
    if (entry.kind === "folder") {
      list.append(el("li", {}, el("button", { type: "button", class: "name folder", text: entry.name,
        "aria-label": `Open folder ${entry.name}`, onclick: () => browse(entry.path) })));
    } else {
      const id = `pick-${list.children.length}`;
      list.append(el("li", {},
        el("input", { type: "checkbox", id, "data-path": entry.path, "data-kind": entry.kind }),
        el("label", { for: id, class: "name", text: entry.name }),
        el("span", { class: "muted", text: entry.kind })));
    }
  }
}

function renderQueue() {
  const list = $("queue");
  list.replaceChildren();
  for (const path of queue.keys()) {
    list.append(el("li", {}, el("span", { class: "name", title: path, text: path }),
      el("button", { type: "button", text: "Remove", "aria-label": `Remove ${baseName(path)}`,
        onclick: () => { queue.delete(path); renderQueue(); } })));
  }
  $("start-analysis").disabled = queue.size === 0 || currentTask !== null;
}

function addFiles(entries) {
  for (const entry of entries) queue.set(entry.path, entry.kind);
  renderQueue();
}

function requestBody() {
  const files = [...queue.keys()];
  const body = { cache_dir: cacheDir(), visual_media_paths: [], transcription_jobs: [], face_clustering_jobs: [] };
  const visual = $("run-visual").checked, speech = $("run-speech").checked, faces = $("run-faces").checked;
  if (!visual && !speech && !faces) throw new Error("Choose at least one of Visual, Speech, Faces");
  const images = files.filter((p) => queue.get(p) !== "audio");
  if (visual) body.visual_media_paths = images;
  if (speech) {
    const language = $("speech-language").value.trim() || null;
    body.transcription_jobs = files.filter((p) => queue.get(p) !== "image").map((path) => ({ path, language }));
  }
  if (faces) {
    const name = $("face-job").value.trim();
    if (!name) throw new Error("Give the face job a name");
    body.face_clustering_jobs = [{ cluster_job_name: name, face_media_paths: images }];
  }
  return body;
}

// One row per file and part ("video" covers visual and faces, "speech" the transcript).
function row(path, part) {
  const id = `prog-${btoa(unescape(encodeURIComponent(`${part}:${path}`))).replace(/[^A-Za-z0-9]/g, "")}`;
  let item = document.getElementById(id);
  if (!item) {
    const label = `${baseName(path)} (${part === "speech" ? "speech" : "visual"})`;
    item = el("li", { id, "data-path": path, "data-part": part },
      el("span", { class: "name", title: path, text: label }),
      el("progress", { max: "100", value: "0", "aria-label": `Progress of ${label}` }),
      el("span", { class: "state", text: "waiting" }),
      el("span", { class: "msg error" }));
    $("progress-list").append(item);
  }
  return item;
}

function onProgress(event) {
  if (event.done) {
    finish(event);
    return;
  }
  if (!event.video_path) {
    if (event.type === "faces" || event.is_cluster_job) say($("analysis-status"), `Clustering faces… ${Math.round(event.progress || 0)}%`);
    return;
  }
  const item = row(event.video_path, event.type === "speech" ? "speech" : "video");
  item.querySelector("progress").value = event.progress || 0;
  const state = item.querySelector(".state");
  if (event.status === "failed") {
    state.textContent = "failed";
    item.dataset.state = "failed";
    item.querySelector(".msg").textContent = event.error || "failed";
  } else if (event.status === "cancelled") {
    state.textContent = "cancelled";
    item.dataset.state = "cancelled";
  } else if (item.dataset.state !== "failed") {
    state.textContent = event.progress >= 100 ? "done" : `${Math.round(event.progress)}%`;
    item.dataset.state = event.progress >= 100 ? "done" : "running";
  }
}

function finish(event) {
  const failed = event.files_failed || 0;
  const text = `Analysis ${String(event.status || "finished").replace(/_/g, " ")}: ${event.files_total || 0} files`
    + (failed ? `, ${failed} failed` : "") + (event.files_cancelled ? `, ${event.files_cancelled} cancelled` : "");
  say($("analysis-status"), text, failed || event.status === "failed" ? "error" : "ok");
  for (const error of event.errors || []) {
    if (error.path) {
      const item = row(error.path, "video");
      if (!item.dataset.state || item.dataset.state !== "failed") {
        const speech = document.querySelector(`#progress-list li[data-path="${CSS.escape(error.path)}"][data-part="speech"]`);
        (speech || item).querySelector(".msg").textContent = error.error;
      }
    } else if (error.cluster_job_name) {
      $("analysis-status").textContent += ` — face job ${error.cluster_job_name}: ${error.error}`;
    }
  }
  currentTask = null;
  $("cancel-analysis").disabled = true;
  forgetLoaded();
  renderQueue();
  document.body.dataset.analysis = event.status || "done";
}

async function start() {
  const status = $("analysis-status");
  let body;
  try { body = requestBody(); } catch (err) { say(status, err.message, "error"); return; }
  $("progress-list").replaceChildren();
  for (const path of body.visual_media_paths) row(path, "video");
  for (const job of body.transcription_jobs) row(job.path, "speech");
  document.body.dataset.analysis = "running";
  try {
    const started = await post("/analyze", body);
    currentTask = started.task_id;
    for (const [path, why] of Object.entries(started.invalid_paths || {})) {
      const item = row(path, "video");
      item.dataset.state = "failed";
      item.querySelector(".state").textContent = "refused";
      item.querySelector(".msg").textContent = why;
    }
    say(status, `Running: ${started.files ?? queue.size} files`);
    $("cancel-analysis").disabled = false;
    renderQueue();
    follow(currentTask, onProgress);
  } catch (err) {
    document.body.dataset.analysis = "refused";
    say(status, err.message, "error");
  }
}

async function cancel() {
  try {
    const reply = await post("/analyze/cancel", {});
    say($("analysis-status"), reply.message);
  } catch (err) {
    say($("analysis-status"), err.message, "error");
  }
}

export function init() {
  $("browse-form").addEventListener("submit", (event) => { event.preventDefault(); browse($("browse-path").value.trim()); });
  $("browse-up").addEventListener("click", () => listing?.parent && browse(listing.parent));
  $("add-selected").addEventListener("click", () => {
    const picked = [...document.querySelectorAll("#browse-list input:checked")];
    addFiles(picked.map((box) => ({ path: box.dataset.path, kind: box.dataset.kind })));
    picked.forEach((box) => { box.checked = false; });
  });
  $("add-folder").addEventListener("click", () => addFiles((listing?.entries || []).filter((e) => e.kind !== "folder")));
  $("start-analysis").addEventListener("click", start);
  $("cancel-analysis").addEventListener("click", cancel);
  renderQueue();
}

let browsed = false;
export function shown() {
  if (!browsed) { browsed = true; browse(""); }
}

window.addEventListener("sightline:signed-in", shown);
