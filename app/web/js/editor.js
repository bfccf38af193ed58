// Editor (the editing backend under /api, same key): a project from a server path or an upload,
// its timeline of segments (split, trim, delete), a grade with a live preview, an mp4 export.
// Timeline times (playhead, split) are converted to the segment's source time the API wants.
import { call, el, key, say } from "./api.js";

const $ = (id) => document.getElementById(id);
const api = {
  get: (path) => call("GET", path, undefined, { base: "/api" }),
  post: (path, body) => call("POST", path, body, { base: "/api" }),
  del: (path) => call("DELETE", path, undefined, { base: "/api" }),
};
// The grade's knobs: name (the API's), label, range ±limit, slider step.
const KNOBS = [["brightness", "Brightness", 1, 0.05], ["contrast", "Contrast", 1, 0.05],
  ["saturation", "Saturation", 1, 0.05], ["gamma", "Gamma", 1, 0.05], ["temperature", "Temperature", 1, 0.05],
  ["hue_shift", "Hue shift", 180, 5]];
const GRADES = KNOBS.map(([name]) => name);
const DEBOUNCE_MS = 250;

let project = null;
let selected = null;      // id of the selected segment
let gradeTimer = null;
let gradeAsked = 0;       // only the newest grade preview is shown
let frameTimer = null;
let frameAsked = 0;
let exportPoll = null;

const status = (text, kind = "") => say($("editor-status"), text, kind);
const fmt = (value) => Number(value).toFixed(2);
const segmentEnd = (seg) => seg.timeline_start + (seg.end_ts - seg.start_ts);
const current = () => project?.segments.find((seg) => seg.id === selected) || null;

function fileOf(seg) {
  return project.assets.find((asset) => asset.id === seg.asset_id)?.file_name || "clip";
}

function grade() {
  return Object.fromEntries(GRADES.map((name) => [name, Number($(`grade-${name}`).value)]));
}

function setEnabled() {
  const seg = current();
  for (const id of ["editor-split", "editor-trim", "editor-delete", "grade-apply", "grade-reset"]) {
    $(id).disabled = !seg;
  }
  $("editor-export").disabled = !project || !project.segments.length;
}

function render() {
  const list = $("editor-segments");
  list.replaceChildren();
  if (!project) { setEnabled(); return; }
  $("editor-duration").textContent = `${project.segments.length} segment${project.segments.length === 1 ? "" : "s"}, ${fmt(project.duration)} s`;
  const playhead = $("editor-playhead");
  playhead.max = String(Math.max(project.duration, 0.1));
  if (Number(playhead.value) > project.duration) playhead.value = "0";
  if (!project.segments.some((seg) => seg.id === selected)) selected = project.segments[0]?.id || null;
  project.segments.forEach((seg, i) => {
    const label = `Segment ${i + 1}: ${fmt(seg.timeline_start)}–${fmt(segmentEnd(seg))} s`;
    const detail = `${fileOf(seg)} ${fmt(seg.start_ts)}–${fmt(seg.end_ts)} s${seg.source === "original" ? "" : ` (${seg.source})`}`;
    list.append(el("li", { "data-id": seg.id },
      el("button", { type: "button", class: "name", "aria-pressed": String(seg.id === selected), text: label,
        title: detail, onclick: () => select(seg.id) }),
      el("span", { class: "muted", text: detail })));
  });
  const seg = current();
  $("editor-selected").textContent = seg ? `Selected: ${fileOf(seg)} ${fmt(seg.start_ts)}–${fmt(seg.end_ts)} s (source time)` : "No segment";
  if (seg) {
    $("editor-trim-start").value = fmt(seg.start_ts);
    $("editor-trim-end").value = fmt(seg.end_ts);
  }
  document.body.dataset.editorSegments = String(project.segments.length);
  setEnabled();
}

function select(id) {
  selected = id;
  render();
  const seg = current();
  if (seg) {
    // Move the playhead into the selection so split and the previews refer to it.
    const t = Number($("editor-playhead").value);
    if (t < seg.timeline_start || t >= segmentEnd(seg)) setPlayhead(seg.timeline_start);
  }
  askGrade(true);
}

async function load(id) {
  project = await api.get(`/project/${encodeURIComponent(id)}`);
  render();
  // A URL ingest or an upload is probed on the server; poll until every asset is ready.
  if (project.assets.some((asset) => ["pending", "uploading"].includes(asset.status))) {
    setTimeout(() => { if (project?.id === id) load(id).catch((err) => status(err.message, "error")); }, 1000);
  }
  const failed = project.assets.find((asset) => asset.status === "failed");
  if (failed) status(`${failed.file_name}: ${failed.error}`, "error");
}

async function refreshProjects(chosen) {
  const { projects } = await api.get("/project");
  const picker = $("editor-project");
  picker.replaceChildren(el("option", { value: "", text: projects.length ? "(choose)" : "(none yet)" }),
    ...projects.map((p) => el("option", { value: p.id, text: `${p.name} (${fmt(p.duration)} s)` })));
  if (chosen) picker.value = chosen;
}

async function create(source) {
  const name = $("editor-name").value.trim() || "Untitled";
  const body = { name };
  if (source) body.video_url = source;
  const made = await api.post("/project", body);
  await refreshProjects(made.id);
  project = made;
  selected = null;
  render();
  await load(made.id);
  status(`Project ${name} created`, "ok");
  if (project.segments.length) select(project.segments[0].id);
  return made;
}

async function createFromPath() {
  const source = $("editor-source").value.trim();
  if (!source) { status("Give a path on the server or a URL", "error"); return; }
  status("Creating…");
  try { await create(source); } catch (err) { status(err.message, "error"); }
}

async function upload() {
  const file = $("editor-upload").files[0];
  if (!file) { status("Choose a file to upload", "error"); return; }
  $("editor-upload-go").disabled = true;
  try {
    const target = project || await create(null);
    const { upload_url: url } = await api.post(`/project/${encodeURIComponent(target.id)}/upload`,
      { file_name: file.name, content_type: file.type || "application/octet-stream" });
    status(`Uploading ${file.name}…`);
    // The signed URL needs no licence key.
    const response = await fetch(url, { method: "PUT", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    if (!response.ok) {
      let message = `${response.status}`;
      try { message = (await response.json()).error || message; } catch { /* not JSON */ }
      throw new Error(message);
    }
    await load(target.id);
    status(`Uploaded ${file.name}`, "ok");
  } catch (err) {
    status(err.message, "error");
  } finally {
    $("editor-upload-go").disabled = false;
  }
}

function setPlayhead(t) {
  $("editor-playhead").value = String(t);
  $("editor-split-at").value = fmt(t);
  $("editor-playhead-value").textContent = `${fmt(t)} s`;
  askFrame();
}

// The user moved the playhead: the segment under it becomes the selection.
function movePlayhead(t) {
  setPlayhead(t);
  const under = project?.segments.find((s) => t >= s.timeline_start && t < segmentEnd(s));
  if (under && under.id !== selected) { selected = under.id; render(); }
  askGrade();
}

function askFrame() {
  clearTimeout(frameTimer);
  frameTimer = setTimeout(async () => {
    if (!project || !project.segments.length) return;
    const asked = ++frameAsked;
    const t = Math.min(Number($("editor-playhead").value), Math.max(project.duration - 0.001, 0));
    try {
      const frame = await api.post(`/project/${encodeURIComponent(project.id)}/preview/frame`, { ts: t });
      if (asked === frameAsked) $("editor-frame").src = frame.frame_url;
    } catch (err) { status(err.message, "error"); }
  }, DEBOUNCE_MS);
}

function gradeOutputs() {
  for (const name of GRADES) {
    const value = Number($(`grade-${name}`).value);
    $(`grade-${name}-value`).textContent = name === "hue_shift" ? `${value}°` : value.toFixed(2);
  }
}

// The grade preview of the selected segment at the playhead (when the playhead is inside it).
function askGrade(now = false) {
  gradeOutputs();
  clearTimeout(gradeTimer);
  gradeTimer = setTimeout(async () => {
    const seg = current();
    if (!seg) return;
    const asked = ++gradeAsked;
    const t = Number($("editor-playhead").value);
    const body = grade();
    if (t >= seg.timeline_start && t < segmentEnd(seg)) body.ts = seg.start_ts + (t - seg.timeline_start);
    try {
      const preview = await api.post(`/segment/${encodeURIComponent(seg.id)}/grade-preview`, body);
      if (asked !== gradeAsked) return;
      const img = $("editor-grade-preview");
      img.addEventListener("load", () => { img.dataset.grade = JSON.stringify(grade()); }, { once: true });
      img.src = preview.preview_frame_url;
    } catch (err) { status(err.message, "error"); }
  }, now ? 0 : DEBOUNCE_MS);
}

async function edit(action, run) {
  try {
    await run();
    await load(project.id);
    status(action, "ok");
    askFrame();
    askGrade(true);
  } catch (err) {
    status(err.message, "error");
  }
}

function split() {
  const t = Number($("editor-split-at").value);
  // Split the segment under that timeline time (the selection, if the time is inside it).
  const seg = project.segments.find((s) => t > s.timeline_start && t < segmentEnd(s));
  if (!seg) { status(`${fmt(t)} s is not inside a segment (nor on its edge)`, "error"); return; }
  edit(`Split at ${fmt(t)} s`, async () => {
    const { left } = await api.post(`/segment/${encodeURIComponent(seg.id)}/split`,
      { split_ts: seg.start_ts + (t - seg.timeline_start) });
    selected = left.id;
  });
}

function trim() {
  const seg = current();
  const start = Number($("editor-trim-start").value);
  const end = Number($("editor-trim-end").value);
  edit(`Trimmed to ${fmt(start)}–${fmt(end)} s`, () =>
    api.post(`/segment/${encodeURIComponent(seg.id)}/trim`, { new_start_ts: start, new_end_ts: end }));
}

function remove() {
  const seg = current();
  edit("Segment deleted", () => api.del(`/segment/${encodeURIComponent(seg.id)}`));
}

function applyGrade() {
  const seg = current();
  status("Rendering the grade…");
  $("grade-apply").disabled = true;
  edit("Grade applied", async () => {
    const graded = await api.post(`/segment/${encodeURIComponent(seg.id)}/color-grade`, grade());
    selected = graded.segment_id;
    resetGrade(false);
  });
}

function resetGrade(ask = true) {
  for (const name of GRADES) $(`grade-${name}`).value = "0";
  if (ask) askGrade(true); else gradeOutputs();
}

async function showStrip() {
  if (!project || !project.segments.length) return;
  const fps = Math.min(2, 12 / Math.max(project.duration, 0.1));
  try {
    const { frames } = await api.post(`/project/${encodeURIComponent(project.id)}/preview/strip`,
      { start: 0, end: project.duration, fps });
    $("editor-strip").replaceChildren(...frames.map((frame) => el("li", {},
      el("button", { type: "button", "aria-label": `Playhead to ${fmt(frame.timestamp)} s`,
        onclick: () => movePlayhead(frame.timestamp) },
      el("img", { src: frame.frame_url, alt: "", loading: "lazy" })))));
  } catch (err) { status(err.message, "error"); }
}

function exportShow(job) {
  $("editor-export-progress").value = Math.round((job.progress || 0) * 100);
  const state = job.status === "failed" ? `failed: ${job.error}` : job.status;
  say($("editor-export-status"), `Export ${state} ${Math.round((job.progress || 0) * 100)}%`,
    job.status === "failed" ? "error" : job.status === "completed" ? "ok" : "");
  document.body.dataset.editorExport = job.status;
  if (job.status === "completed") {
    const link = $("editor-download");
    link.href = job.download_url;
    link.hidden = false;
    say($("editor-export-status"), `Export completed: ${fmt(job.duration)} s`, "ok");
  }
}

async function startExport() {
  clearInterval(exportPoll);
  $("editor-download").hidden = true;
  try {
    const started = await api.post("/export", { project_id: project.id, format: "mp4" });
    exportShow({ status: started.status, progress: 0 });
    const id = started.export_job_id;
    exportPoll = setInterval(async () => {
      try {
        const job = await api.get(`/export/${encodeURIComponent(id)}`);
        exportShow(job);
        if (["completed", "failed"].includes(job.status)) clearInterval(exportPoll);
      } catch (err) {
        clearInterval(exportPoll);
        say($("editor-export-status"), err.message, "error");
      }
    }, 1000);
  } catch (err) {
    say($("editor-export-status"), err.message, "error");
  }
}

export function shown() {
  if (key.get()) refreshProjects($("editor-project").value).catch((err) => status(err.message, "error"));
}

function gradeSliders() {
  const actions = document.querySelector("fieldset.grades .grade-actions");
  for (const [name, label, limit, step] of KNOBS) {
    const id = `grade-${name}`;
    actions.before(el("label", { for: id, text: label }),
      el("input", { id, type: "range", min: -limit, max: limit, step, value: 0 }),
      el("output", { id: `${id}-value`, for: id, text: "0" }));
  }
}

export function init() {
  gradeSliders();
  $("editor-create-form").addEventListener("submit", (event) => { event.preventDefault(); createFromPath(); });
  $("editor-upload-go").addEventListener("click", upload);
  $("editor-project").addEventListener("change", async (event) => {
    if (!event.target.value) return;
    try { await load(event.target.value); askGrade(true); askFrame(); } catch (err) { status(err.message, "error"); }
  });
  $("editor-playhead").addEventListener("input", (event) => movePlayhead(Number(event.target.value)));
  $("editor-split-form").addEventListener("submit", (event) => { event.preventDefault(); split(); });
  $("editor-trim").addEventListener("click", trim);
  $("editor-delete").addEventListener("click", remove);
  for (const name of GRADES) $(`grade-${name}`).addEventListener("input", () => askGrade());
  $("grade-reset").addEventListener("click", () => resetGrade());
  $("grade-apply").addEventListener("click", applyGrade);
  $("editor-export").addEventListener("click", startExport);
  $("editor-strip-go").addEventListener("click", showStrip);
  gradeOutputs();
  setEnabled();
}
