// Watch folders: list, add, edit, remove; start/stop the service and show what it does.
import { cacheDir, del, el, get, post, put, say } from "./api.js";

const $ = (id) => document.getElementById(id);

function describeService(s) {
  if (!s) return "Service: unknown";
  let text = `Service: ${s.state}`;
  if (s.current_file) text += ` — analysing ${s.current_file}`;
  if (s.files_pending) text += ` — ${s.files_pending} pending`;
  if (s.last_error) text += ` — last error: ${s.last_error}`;
  return text;
}

async function refresh() {
  try {
    const reply = await get("/watch-folders");
    say($("watch-service"), describeService(reply.service_status));
    $("watch-list").replaceChildren(...reply.watch_folders.map((w) => el("tr", {},
      el("td", { text: w.folder_path }), el("td", { text: w.cache_dir || "" }),
      el("td", { text: [w.enable_visual_analysis && "visual", w.enable_audio_analysis && `speech (${w.audio_language})`,
        w.enable_face_analysis && "faces"].filter(Boolean).join(", ") + (w.enabled ? "" : " · disabled") }),
      el("td", { text: String(w.files_analyzed_count ?? 0) }),
      el("td", {},
        el("button", { type: "button", text: "Edit", "aria-label": `Edit ${w.folder_path}`, onclick: () => edit(w) }),
        el("button", { type: "button", text: "Remove", "aria-label": `Remove ${w.folder_path}`, onclick: () => remove(w) })))));
  } catch (err) {
    say($("watch-status"), err.message, "error");
  }
}

function edit(w) {
  $("watch-id").value = w.id;
  $("watch-folder").value = w.folder_path;
  $("watch-cache").value = w.cache_dir || "";
  $("watch-visual").checked = !!w.enable_visual_analysis;
  $("watch-audio").checked = !!w.enable_audio_analysis;
  $("watch-faces").checked = !!w.enable_face_analysis;
  $("watch-enabled").checked = !!w.enabled;
  $("watch-language").value = w.audio_language || "en";
  $("watch-save").textContent = "Save watch folder";
  $("watch-new").hidden = false;
  $("watch-folder").focus();
}

function reset() {
  $("watch-form").reset();
  $("watch-id").value = "";
  $("watch-save").textContent = "Add watch folder";
  $("watch-new").hidden = true;
}

async function save() {
  const status = $("watch-status");
  let cache = $("watch-cache").value.trim();
  try { if (!cache) cache = cacheDir(); } catch (err) { say(status, err.message, "error"); return; }
  const body = { folder_path: $("watch-folder").value.trim(), cache_dir: cache,
    enable_visual_analysis: $("watch-visual").checked, enable_audio_analysis: $("watch-audio").checked,
    enable_face_analysis: $("watch-faces").checked, enabled: $("watch-enabled").checked,
    audio_language: $("watch-language").value.trim() || "en" };
  const id = $("watch-id").value;
  try {
    const reply = id ? await put(`/watch-folders/${encodeURIComponent(id)}`, body) : await post("/watch-folders", body);
    say(status, reply.message || "Saved", "ok");
    reset();
    refresh();
  } catch (err) {
    say(status, err.message, "error");
  }
}

async function remove(w) {
  try {
    const reply = await del(`/watch-folders/${encodeURIComponent(w.id)}`);
    say($("watch-status"), reply.message || "Removed", "ok");
    refresh();
  } catch (err) {
    say($("watch-status"), err.message, "error");
  }
}

async function service(action) {
  try {
    const reply = await post(`/watch-folders/service/${action}`, {});
    say($("watch-status"), reply.message, "ok");
    say($("watch-service"), describeService(reply.service_status));
  } catch (err) {
    say($("watch-status"), err.message, "error");
  }
}

export function init() {
  $("watch-form").addEventListener("submit", (event) => { event.preventDefault(); save(); });
  $("watch-new").addEventListener("click", reset);
  $("watch-start").addEventListener("click", () => service("start"));
  $("watch-stop").addEventListener("click", () => service("stop"));
  $("watch-refresh").addEventListener("click", refresh);
}

export function shown() {
  refresh();
}
