// The shared player: streams a file from the server (HTTP Range) and seeks to a moment; the
// scene strip beneath shows the scene's frames, each one a seek target.
import { baseName, cacheDir, clock, el, mediaUrl, post, seconds } from "./api.js";

const $ = (id) => document.getElementById(id);
let playing = null;

function seekWhenReady(video, time) {
  const go = () => { video.currentTime = time; };
  if (video.readyState >= 1) go();
  else video.addEventListener("loadedmetadata", go, { once: true });
}

export function play(path, time, scene) {
  const video = $("player");
  if (playing !== path) $("scene-strip").replaceChildren();
  if (playing !== path) {
    playing = path;
    video.src = mediaUrl(path);
    video.dataset.path = path;
  }
  video.dataset.target = String(time);
  seekWhenReady(video, time);
  $("player-title").textContent = baseName(path);
  $("player-caption").textContent = `${clock(time)}` + (scene ? ` · scene ${scene.start}–${scene.end}` : "");
  if (scene) strip(path, scene);
}

async function strip(path, scene) {
  const list = $("scene-strip");
  list.replaceChildren();
  let reply;
  try {
    reply = await post("/thumbnails/scene", { cache_dir: cacheDir(), media_path: path, start_time: scene.start,
      end_time: scene.end });
  } catch (err) {
    list.append(el("li", { class: "error", text: err.message }));
    return;
  }
  for (const [image, time] of reply.scene_thumbnails || []) {
    const at = seconds(time);
    list.append(el("li", {}, el("button", { type: "button", "aria-label": `Seek to ${clock(at)}`,
      onclick: () => play(path, at) },
    el("img", { alt: "", src: image ? `data:image/jpeg;base64,${image}` : undefined, loading: "lazy" }))));
  }
}
