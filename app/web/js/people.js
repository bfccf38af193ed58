// People: face clusters with sample faces; name one, merge two, move faces, recluster.
import { cacheDir, el, follow, get, post, put, say } from "./api.js";

const $ = (id) => document.getElementById(id);
let clusters = [];

function job() { return $("people-job").value; }
function changed() { window.dispatchEvent(new CustomEvent("sightline:people-changed")); }

async function refreshJobs() {
  const status = $("people-status");
  let dir;
  try { dir = cacheDir(); } catch (err) { say(status, err.message, "error"); return; }
  try {
    const reply = await get("/faces/clusters", { cache_dir: dir });
    const select = $("people-job");
    const previous = select.value;
    select.replaceChildren(...reply.cluster_jobs.map((name) => el("option", { value: name, text: name })));
    if (reply.cluster_jobs.includes(previous)) select.value = previous;
    if (!reply.cluster_jobs.length) {
      say(status, "No face jobs in this cache folder yet: run Faces in the Library.", "muted");
      $("clusters").replaceChildren();
      return;
    }
    await refreshClusters();
  } catch (err) {
    say(status, err.message, "error");
  }
}

// Cluster ids are UUIDs: people see a position number instead (and the name, once given).
function number(c) { return clusters.indexOf(c) + 1; }
function clusterLabel(c) {
  return `${c.name || `Cluster ${number(c)}`} (${c.size} faces)`;
}

async function refreshClusters() {
  const status = $("people-status");
  try {
    const reply = await post("/faces/clusters/samples", { cache_dir: cacheDir(), cluster_job_name: job(), limit_per_cluster: 6 });
    clusters = reply.clusters || [];
    say(status, `${clusters.length} clusters, ${reply.total_entries} faces`);
    const list = $("clusters");
    list.replaceChildren(...clusters.map(renderCluster));
    const options = () => clusters.map((c) => el("option", { value: c.cluster_id, text: clusterLabel(c) }));
    $("merge-from").replaceChildren(...options());
    $("merge-into").replaceChildren(...options());
    if (clusters.length > 1) $("merge-into").selectedIndex = 1;
  } catch (err) {
    say(status, err.message, "error");
  }
}

function renderCluster(c) {
  const n = number(c);
  const nameId = `cluster-name-${n}`;
  const faces = el("div", { class: "faces" }, c.sample_faces.map((image) =>
    el("img", { class: "face", alt: "", src: `data:image/jpeg;base64,${image}` })));
  const more = el("div", { class: "more" });
  return el("li", { class: "cluster", "data-cluster": c.cluster_id },
    el("h3", { text: clusterLabel(c) }),
    faces,
    el("form", { class: "row", onsubmit: (event) => { event.preventDefault(); rename(c, event.target.elements[0].value); } },
      el("label", { for: nameId, text: `Name of cluster ${n}` }),
      el("input", { id: nameId, type: "text", value: c.name || "" }),
      el("button", { type: "submit", text: "Save name", "aria-label": `Save name of cluster ${n}` })),
    el("button", { type: "button", text: "Show faces to move", "aria-label": `Show faces of cluster ${n}`,
      onclick: () => showFaces(c, more) }),
    more);
}

async function rename(c, name) {
  try {
    await put("/faces/clusters/names", { cache_dir: cacheDir(), cluster_job_name: job(),
      assignments: [{ cluster_id: c.cluster_id, name: name.trim() || null }] });
    const n = number(c);
    await refreshClusters();
    say($("people-status"), name.trim() ? `Cluster ${n} is now ${name.trim()}` : `Cluster ${n} has no name`, "ok");
    changed();
  } catch (err) {
    say($("people-status"), err.message, "error");
  }
}

async function showFaces(c, box) {
  try {
    const reply = await post("/faces/clusters/faces", { cache_dir: cacheDir(), cluster_job_name: job(),
      cluster_id: c.cluster_id, limit: 60 });
    const picks = reply.faces.map((face) => {
      const id = `face-${face.face_id}`;
      return el("div", { class: "face-pick" },
        el("img", { class: "face", alt: "", src: `data:image/jpeg;base64,${face.image}` }),
        el("span", {}, el("input", { type: "checkbox", id, value: String(face.face_id) }),
          el("label", { for: id, text: `Face ${face.face_id}` })));
    });
    const targetId = `move-target-${number(c)}`;
    const target = el("select", { id: targetId },
      clusters.filter((o) => o.cluster_id !== c.cluster_id).map((o) => el("option", { value: o.cluster_id, text: clusterLabel(o) })),
      el("option", { value: "new", text: "a new cluster" }), el("option", { value: "noise", text: "not a person (noise)" }));
    box.replaceChildren(el("div", { class: "faces" }, picks),
      el("div", { class: "row" }, el("label", { for: targetId, text: "Move selected faces to" }), target,
        el("button", { type: "button", text: "Move faces", onclick: () => {
          const ids = [...box.querySelectorAll("input:checked")].map((i) => Number(i.value));
          move(ids, target.value);
        } })));
  } catch (err) {
    say($("people-status"), err.message, "error");
  }
}

async function modify(body, done) {
  try {
    const reply = await post("/faces/clusters/modify", { cache_dir: cacheDir(), cluster_job_name: job(), ...body });
    await refreshClusters();
    say($("people-status"), `${done}: ${reply.message || ""}`, "ok");
    changed();
  } catch (err) {
    say($("people-status"), err.message, "error");
  }
}

function move(ids, target) {
  if (!ids.length) { say($("people-status"), "Select faces to move", "error"); return; }
  modify({ moves: [{ face_ids: ids, target_cluster_id: target }] }, `Moved ${ids.length} faces`);
}

function merge() {
  const from = $("merge-from").value, into = $("merge-into").value;
  if (!from || !into || from === into) { say($("people-status"), "Choose two different clusters", "error"); return; }
  const label = (id) => clusterLabel(clusters.find((c) => c.cluster_id === id));
  modify({ merges: [{ cluster_ids: [from], target_cluster_id: into }] }, `Merged ${label(from)} into ${label(into)}`);
}

async function recluster() {
  const progress = $("recluster-progress");
  const status = $("people-status");
  progress.value = 0;
  try {
    const reply = await post("/faces/recluster", { cache_dir: cacheDir(), cluster_job_name: job(),
      eps: Number($("recluster-eps").value), min_samples: Number($("recluster-min-samples").value) });
    say(status, "Reclustering…");
    follow(reply.task_id, (event) => {
      progress.value = event.progress || 0;
      if (event.done) {
        if (event.status === "failed") say(status, `Recluster failed: ${event.error}`, "error");
        else say(status, `Reclustered: ${event.num_clusters} clusters, ${event.noise_entries} faces left out`, "ok");
        refreshClusters().then(() => {
          if (event.status !== "failed") say(status, `Reclustered: ${event.num_clusters} clusters, ${event.noise_entries} faces left out`, "ok");
        });
        changed();
      }
    });
  } catch (err) {
    say(status, err.message, "error");
  }
}

export function init() {
  $("people-refresh").addEventListener("click", refreshJobs);
  $("people-job").addEventListener("change", refreshClusters);
  $("merge").addEventListener("click", merge);
  $("recluster").addEventListener("click", recluster);
  for (const name of ["recluster-eps", "recluster-min-samples"]) {
    $(name).addEventListener("input", () => { $(`${name}-value`).textContent = $(name).value; });
  }
}

export function shown() {
  refreshJobs();
}
