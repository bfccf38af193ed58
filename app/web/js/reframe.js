// Reframe (API v2): ingest a video, run the reframe with its steps' progress from the video's
// Socket.IO room, and play the vertical result.
import { ApiError, el, follow, key, say, unfollow, v2 } from "./api.js";

const $ = (id) => document.getElementById(id);
let videoId = null;
let waitingFor = null;   // the step whose end we wait for: "ingest" or "reframe"

function show(event) {
  const progress = $("reframe-progress");
  progress.value = event.progress || 0;
  const running = event.running ? ` (running ${event.running})` : "";
  say($("reframe-step"), `${event.step}: ${event.status}${running} ${Math.round(event.progress || 0)}%`,
    event.status === "failed" ? "error" : "");
  if (event.error) say($("reframe-status"), event.error, "error");
  // One line per step and per input it runs first (scene detection, face tracking, …).
  const name = event.running && event.running !== event.step ? `${event.step} › ${event.running}` : event.step;
  let line = [...$("reframe-steps").children].find((li) => li.dataset.step === name);
  if (!line) {
    line = el("li", { "data-step": name });
    $("reframe-steps").append(line);
  }
  line.textContent = `${name}: ${event.status} ${Math.round(event.progress || 0)}%`;
  // An input the step ran before the one running now (or before the step ended) is done.
  for (const other of $("reframe-steps").children) {
    const input = other.dataset.step;
    if (event.status !== "failed" && input !== name && input.startsWith(`${event.step} › `) && !other.dataset.done) {
      other.dataset.done = "1";
      other.textContent = `${input}: done`;
    }
  }
  if (event.done && event.step === waitingFor) finished(event);
}

function finished(event) {
  const step = waitingFor;
  waitingFor = null;
  document.body.dataset.reframe = `${step}:${event.status}`;
  if (event.status !== "completed") return;
  if (step === "ingest") {
    $("reframe-run").disabled = false;
    say($("reframe-status"), `Ingested as ${videoId}`, "ok");
  } else {
    unfollow(videoId);
    playResult();
  }
}

function watch(step) {
  waitingFor = step;
  document.body.dataset.reframe = `${step}:running`;
  $("reframe-steps").replaceChildren();
  follow(videoId, show, { untilDone: false });
  // The room replays the last event to a late joiner; a poll covers a step that ended before we joined.
  setTimeout(async () => {
    if (waitingFor !== step) return;
    try {
      const status = await v2.get(`/status/${encodeURIComponent(videoId)}`);
      if (status.step === step && ["completed", "failed"].includes(status.status)) show({ ...status, done: true });
    } catch { /* the events will tell */ }
  }, 3000);
}

async function ingest() {
  const source = $("reframe-source").value.trim();
  if (!source) { say($("reframe-status"), "Give a URL or a path on the server", "error"); return; }
  $("reframe-run").disabled = true;
  $("reframe-result").removeAttribute("src");
  try {
    videoId = (await v2.post("/ingest", { url: source })).video_id;
    say($("reframe-status"), `Ingesting ${source}…`);
    watch("ingest");
  } catch (err) {
    say($("reframe-status"), err.message, "error");
  }
}

async function reframe() {
  if (!videoId) return;
  try {
    await v2.post("/transform", { video_id: videoId, transform_type: "reframe",
      parameters: { aspect_ratio: $("reframe-ratio").value } });
    say($("reframe-status"), "Reframing…");
    watch("reframe");
  } catch (err) {
    say($("reframe-status"), err.message, "error");
  }
}

async function playResult() {
  const url = `/api/v2/download/${encodeURIComponent(videoId)}?suffix=_reframe&license_key=${encodeURIComponent(key.get() || "")}`;
  // Ask for one byte first: a refusal (402: not enough credits) is said in words, which a
  // <video> element cannot do. That first download is the one that is charged.
  try {
    const probe = await fetch(url, { headers: { Range: "bytes=0-0" } });
    if (!probe.ok) {
      let message = `${probe.status}`;
      try { message = (await probe.json()).error || message; } catch { /* not JSON */ }
      throw new ApiError(probe.status, message);
    }
  } catch (err) {
    say($("reframe-status"), err.message, "error");
    return;
  }
  const video = $("reframe-result");
  video.src = url;
  video.addEventListener("loadedmetadata", () => {
    say($("reframe-status"), `Reframed: ${video.videoWidth}×${video.videoHeight}`, "ok");
  }, { once: true });
}

export function init() {
  $("reframe-form").addEventListener("submit", (event) => { event.preventDefault(); ingest(); });
  $("reframe-run").addEventListener("click", reframe);
}
