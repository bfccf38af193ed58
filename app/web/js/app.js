// Sign in, the section tabs, and wiring the sections up.
import { get, key, say } from "./api.js";
import * as library from "./library.js";
import * as search from "./search.js";
import * as transcripts from "./transcripts.js";
import * as people from "./people.js";
import * as watch from "./watch.js";
import * as exporter from "./export.js";
import * as reframe from "./reframe.js";
import * as editor from "./editor.js";

const $ = (id) => document.getElementById(id);
const sections = { library, search, transcripts, people, watch, export: exporter, editor, reframe };
const CACHE = "sightline.cacheDir";

function showApp(on) {
  $("tabs").hidden = !on;
  $("layout").hidden = !on;
  $("signout").hidden = !on;
}

async function signIn(candidate) {
  const status = $("signin-status");
  key.set(candidate);
  say(status, "Checking…");
  try {
    await get("/models/loaded");
  } catch (err) {
    key.clear();
    showApp(false);
    const why = err.status === 401 ? "That licence key was not accepted" : "Cannot sign in";
    say(status, `${why}: ${err.message}`, "error");
    return false;
  }
  say(status, "Signed in", "ok");
  $("licence-key").value = "";
  showApp(true);
  window.dispatchEvent(new CustomEvent("sightline:signed-in"));
  return true;
}

function selectTab(tab, focus = false) {
  for (const other of document.querySelectorAll("[role=tab]")) {
    const on = other === tab;
    other.setAttribute("aria-selected", String(on));
    other.tabIndex = on ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  const name = tab.getAttribute("aria-controls");
  // The player serves the sections that play media; the others get the whole width.
  const player = ["library", "search", "transcripts", "export"].includes(name);
  $("player-panel").hidden = !player;
  $("layout").classList.toggle("wide", !player);
  sections[name]?.shown?.();
}

function initTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (event.key === "Home") selectTab(tabs[0], true);
      else if (event.key === "End") selectTab(tabs[tabs.length - 1], true);
      else if (step) selectTab(tabs[(i + step + tabs.length) % tabs.length], true);
      else return;
      event.preventDefault();
    });
  });
}

export function openTab(name) {
  selectTab($(`tab-${name}`));
}

window.addEventListener("DOMContentLoaded", async () => {
  initTabs();
  const cache = $("cache-dir");
  cache.value = localStorage.getItem(CACHE) || "";
  cache.addEventListener("change", () => {
    localStorage.setItem(CACHE, cache.value.trim());
    window.dispatchEvent(new CustomEvent("sightline:cache-changed"));
  });
  for (const section of Object.values(sections)) section.init?.({ openTab });
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("licence-key").value.trim();
    if (value) signIn(value);
  });
  $("signout").addEventListener("click", () => {
    key.clear();
    showApp(false);
    say($("signin-status"), "Signed out");
  });
  window.addEventListener("sightline:unauthorised", (event) => {
    key.clear();
    showApp(false);
    say($("signin-status"), `Signed out: ${event.detail}`, "error");
  });
  if (key.get()) await signIn(key.get());
  document.body.dataset.ready = "1";
});
