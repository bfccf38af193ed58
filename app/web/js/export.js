// Export: a bin of moments collected from search results, cut as clips or sent to Premiere.
import { baseName, clock, el, post, say } from "./api.js";
import { play } from "./player.js";

const $ = (id) => document.getElementById(id);
const bin = [];

function render() {
  $("bin").replaceChildren(...bin.map((moment, i) => el("li", {},
    el("button", { type: "button", class: "name", text: `${baseName(moment.path)} at ${clock(moment.seconds)}`,
      "aria-label": `Play ${baseName(moment.path)} at ${clock(moment.seconds)}`, onclick: () => play(moment.path, moment.seconds) }),
    el("button", { type: "button", text: "Remove", "aria-label": `Remove moment ${i + 1} from bin`,
      onclick: () => { bin.splice(i, 1); render(); } }))));
  document.getElementById("tab-export").textContent = bin.length ? `Export (${bin.length})` : "Export";
}

export function addToBin(moment) {
  if (!bin.some((m) => m.path === moment.path && m.seconds === moment.seconds)) bin.push(moment);
  render();
}

function clips() {
  const length = Math.max(1, Number($("clip-seconds").value) || 5);
  return bin.map((m) => ({ source_path: m.path, start_seconds: Math.max(0, m.seconds - length / 2),
    end_seconds: m.seconds + length / 2 }));
}

async function exportClips() {
  const status = $("export-status");
  if (!bin.length) { say(status, "The bin is empty", "error"); return; }
  const dir = $("export-dir").value.trim();
  if (!dir) { say(status, "Set the Clips folder", "error"); return; }
  say(status, "Cutting clips…");
  try {
    const reply = await post("/export/clips", { clips: clips(), output_dir: dir });
    const failed = reply.results.filter((r) => !r.success);
    say(status, reply.summary + (failed.length ? ` — ${failed.map((r) => r.error).join("; ")}` : ""), failed.length ? "error" : "ok");
  } catch (err) {
    say(status, err.message, "error");
  }
}

async function exportXml() {
  const status = $("export-status");
  if (!bin.length) { say(status, "The bin is empty", "error"); return; }
  const path = $("xml-path").value.trim();
  if (!path) { say(status, "Set the Premiere XML file", "error"); return; }
  try {
    const reply = await post("/export/premiere-xml", { clips: clips(), output_path: path,
      sequence_name: $("sequence-name").value.trim() || "Moments" });
    say(status, `Wrote ${reply.clip_count} clips (${reply.total_duration_seconds}s) to ${reply.output_path}`, "ok");
  } catch (err) {
    say(status, err.message, "error");
  }
}

export function init() {
  $("export-clips").addEventListener("click", exportClips);
  $("export-xml").addEventListener("click", exportXml);
  render();
}
