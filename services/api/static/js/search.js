// The search panel: the query (file, drop, paste or id), k and space, and the results grid.
import { api, el, guarded, say } from "./api.js";
import { keyedImage, keyedUrl, withKey } from "./auth.js";
import { boxName, boxOverlay, boxText, clearOverlay, dragBox, showOverlay } from "./boxes.js";

// size: the query picture's original [width, height], for boxes drawn on its preview
const state = { query: null, previewUrl: null, topic: null, size: null, asked: 0 };
let openDetail = () => {};

const $ = (id) => document.getElementById(id);

/** The current query: {kind: "file", blob} or {kind: "id", id}; null before the first. */
export const currentQuery = () => state.query;

function showPreview(src) {
  const preview = $("query-preview");
  preview.src = src;
  preview.alt = "Query image (drag over it to search with a part of it)";
  $("query-frame").hidden = false;
  clearOverlay($("query-frame"), "query");
  clearOverlay($("query-frame"), "found");
  $("detections").replaceChildren();
  $("query-box").value = "";
}

/** Search with an image file or blob (picked, dropped or pasted). */
export async function searchWithFile(blob) {
  if (!blob.type.startsWith("image/")) {
    throw new Error(`"${blob.name || "clipboard item"}" is not an image (${blob.type || "unknown type"})`);
  }
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(blob);
  showPreview(state.previewUrl);
  state.query = { kind: "file", blob };
  $("query-id").value = "";
  const preview = $("query-preview");
  await preview.decode().catch(() => {});
  state.size = preview.naturalWidth ? [preview.naturalWidth, preview.naturalHeight] : null;
  await runSearch();
}

/** Search with a catalogued image, or with the `box` [x0, y0, x1, y1] of it. */
export async function searchWithId(imageId, box = null) {
  state.query = { kind: "id", id: Number(imageId) };
  $("query-id").value = imageId;
  showPreview(`/v1/images/${imageId}/thumbnail`);
  state.size = null;
  const image = await api(`/v1/images/${imageId}`);
  state.size = [image.width, image.height];
  if (box) $("query-box").value = boxText(box);
  await runSearch();
}

/** Search with the `box` (original pixels) of the current query picture. */
async function searchWithBox(box) {
  $("query-box").value = boxText(box);
  await runSearch();
}

/** Draw the box the search uses on the query preview (none: the whole picture). */
function drawQueryBox() {
  const box = $("query-box").value.trim();
  const numbers = box.split(",").map(Number);
  if (!state.size || numbers.length !== 4 || numbers.some(Number.isNaN)) {
    clearOverlay($("query-frame"), "query");
    return;
  }
  showOverlay($("query-frame"), boxOverlay(...state.size, [{ box: numbers }], { kind: "query" }));
}

function searchParams() {
  const params = new URLSearchParams({ k: $("k").value, facets: "true" });
  if ($("space").value) params.set("space", $("space").value);
  if (state.topic) params.set("topic", state.topic);
  const box = $("query-box").value.trim();
  if (box && state.query) params.set("box", box);
  if ($("scope-regions").checked) params.set("scope", "regions");
  return params;
}

/** The words typed beside the image query, or null. */
const queryText = () => $("query-text").value.trim() || null;

async function runSearch() {
  const query = state.query;
  const text = queryText();
  if (!query && !text) return;
  say("Searching…");
  let body;
  let headers = {};
  if (query && query.kind === "file") {
    body = new FormData();
    body.append("file", query.blob, query.blob.name || "pasted-image");
    if (text) body.append("text", text);
  } else {
    body = JSON.stringify(query ? { image_id: query.id, text: text ?? undefined } : { text });
    headers = { "Content-Type": "application/json" };
  }
  const params = searchParams();
  drawQueryBox();
  const asked = ++state.asked;
  const answer = await api(`/v1/search?${params}`, { method: "POST", body, headers });
  if (asked !== state.asked) return;  // a later search (a new box, k, space) answers instead
  renderResults(answer);
  renderChips(answer.facets);
  const regions = String(answer.mode).startsWith("regions") ? ", regions" : "";
  const where = answer.mode === "text" ? "text search" : `space ${answer.space}${regions}`;
  const part = params.has("box") ? `, box ${params.get("box")}` : "";
  say(`${answer.results.length} results in ${answer.took_ms.toFixed(0)} ms (${where}${part})`);
}

/** One chip per topic with its count over all candidates; a chip filters the grid. */
function renderChips(facets) {
  const topics = facets?.topics ?? [];
  $("topic-chips").replaceChildren(...topics.map(({ value, count }) => el("button", {
    type: "button", class: "secondary chip", "data-topic": value,
    "aria-pressed": String(state.topic === value),
    onclick: guarded(async () => {
      state.topic = state.topic === value ? null : value;
      await runSearch();
    }),
  }, `${value} (${count})`)));
}

/** Seconds as m:ss (or h:mm:ss), the way players show a time. */
export function clock(seconds) {
  const whole = Math.floor(seconds);
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60];
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** Draw a region hit's box over its thumbnail (cropped square: the overlay crops alike). */
async function drawRegion(thumb, hit) {
  const size = hit.region.image_size ?? (hit.width && hit.height ? [hit.width, hit.height]
    : await api(`/v1/images/${hit.image_id}`).then((image) => [image.width, image.height]));
  thumb.append(boxOverlay(...size, [hit.region], { cover: true, kind: "region" }));
}

function card(hit, rank) {
  const label = hit.label ?? "no label";
  const video = hit.video ?? null;
  const region = hit.region ?? null;
  const what = video ? `frame at ${clock(video.t)} of video ${video.id}` : `image ${hit.image_id}`;
  const where = region ? ` (${boxName(region)} at ${boxText(region.box)})` : "";
  const thumb = el("button", { class: "thumb", type: "button",
                               "aria-label": `Result ${rank}: ${what}${where}, ${label}; `
                                 + (video ? "play from there" : "show details"),
                               onclick: () => openDetail(hit.image_id, { hit }) },
    keyedImage(hit.thumbnail_url, { alt: "", loading: "lazy" }),
    video ? el("span", { class: "time", text: `▶ ${clock(video.t)}` }) : null);
  if (region) guarded(drawRegion)(thumb, hit);
  return el("li", { class: "card", "data-image-id": hit.image_id,
                    "data-video-id": video ? video.id : null,
                    "data-region-id": region ? region.id : null },
    thumb,
    el("div", { class: "info" },
      el("span", { class: "score", text: `#${rank} · ${hit.score.toFixed(3)}` }),
      el("span", { class: "muted", text: label, title: label }),
      el("span", { class: "muted", text: hit.collection ?? "—" }),
      hit.title ? el("strong", { class: "title", text: hit.title }) : null,
      hit.caption ? el("span", { class: "caption", text: hit.caption, title: hit.caption }) : null,
      hit.topic ? el("span", { class: "muted topic", text: `topic: ${hit.topic}` }) : null,
      region ? el("span", { class: "muted region", text: `region: ${boxName(region)}` }) : null,
      typeof hit.inliers === "number"
        ? el("span", { class: "muted inliers", text: `${hit.inliers} keypoints verified` })
        : null),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary",
                     "aria-label": `Search with image ${hit.image_id}`,
                     onclick: guarded(() => searchWithId(hit.image_id)) }, "Similar"),
      el("button", { type: "button", class: "secondary", "data-action": "why",
                     "aria-label": `Why image ${hit.image_id} matched`,
                     onclick: () => openDetail(hit.image_id, { hit, explain: true }) }, "Why?")));
}

function renderResults(answer) {
  const grid = $("results");
  grid.replaceChildren(...answer.results.map((hit, i) => card(hit, i + 1)));
  $("search-summary").textContent = answer.results.length
    ? "Select a picture for details, “Similar” to search with it, “Why?” for the heat map."
    : "No results: nothing matches (or the space holds no vectors yet).";
}

async function loadSpaces() {
  const spaces = await api("/v1/spaces");
  const select = $("space");
  select.replaceChildren(...spaces.map((space) => el("option", {
    value: space.name, selected: space.is_default,
    text: `${space.name} (${space.vector_count})${space.is_default ? " · default" : ""}`,
  })));
}

function wireDrop() {
  const drop = $("drop");
  const input = $("file");
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  input.addEventListener("change", guarded(async () => {
    if (input.files.length) await searchWithFile(input.files[0]);
    input.value = "";
  }));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", guarded(async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (!file) throw new Error("nothing to search with: drop an image file");
    await searchWithFile(file);
  }));
  document.addEventListener("paste", guarded(async (event) => {
    const item = [...event.clipboardData.items].find((entry) => entry.type.startsWith("image/"));
    if (item) await searchWithFile(item.getAsFile());
  }));
}

/** Wire the panel; `detail` opens the larger view of a result. */
export async function setupSearch(detail) {
  openDetail = detail;
  wireDrop();
  $("search-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const id = $("query-id").value.trim();
    if (!id && state.query?.kind === "id") {  // the id was cleared: search by words alone
      state.query = null;
      $("query-frame").hidden = true;
    }
    if (id && Number(id) !== state.query?.id) await searchWithId(id);
    else if (state.query || queryText()) await runSearch();
    else throw new Error("give an image (choose, drop or paste one, or type a catalogued id) "
                         + "or words to find in captions");
  }));
  for (const id of ["k", "space", "scope-regions"]) {
    $(id).addEventListener("change", guarded(runSearch));
  }
  dragBox($("query-frame"), () => state.size, guarded(searchWithBox));
  $("clear-box").addEventListener("click", guarded(async () => {
    $("query-box").value = "";
    await runSearch();
  }));
  $("detect-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    await detect();
  }));
  await loadSpaces();
}

/** A URL showing the query picture (an SVG <image> cannot send the key). */
export function queryUrl(query = state.query) {
  return query.kind === "file" ? Promise.resolve(state.previewUrl)
    : keyedUrl(`/v1/images/${query.id}/file`);
}

/** The query picture as bytes to upload: the file itself, or a catalogued image's original. */
async function queryBlob() {
  if (state.query.kind === "file") return state.query.blob;
  const url = `/v1/images/${state.query.id}/file`;
  const response = await fetch(url, { headers: withKey(url) });
  if (!response.ok) throw new Error(`${response.status}: cannot load image ${state.query.id}`);
  return response.blob();
}

/** Run the chosen detector on the query picture: its boxes on the preview, each listed with
 * a button that searches with it. */
async function detect() {
  if (!state.query) throw new Error("choose a query picture first, then detect objects in it");
  const detector = $("detector").value.trim();
  say(`Detecting with ${detector}…`);
  const form = new FormData();
  form.append("file", await queryBlob(), "query");
  const answer = await api(`/v1/detect?${new URLSearchParams({ detector })}`,
                           { method: "POST", body: form });
  state.size = [answer.width, answer.height];
  showOverlay($("query-frame"), boxOverlay(answer.width, answer.height, answer.boxes));
  $("detections").replaceChildren(...answer.boxes.map((found, i) => el("li", {
    "data-box": boxText(found.box) },
    el("span", { text: `${i + 1}. ${boxName(found)} at ${boxText(found.box)}` }),
    el("button", { type: "button", class: "secondary",
                   "aria-label": `Search with box ${i + 1} (${found.label ?? "object"})`,
                   onclick: guarded(() => searchWithBox(found.box)) }, "Search this box"))));
  say(`${answer.boxes.length} ${answer.boxes.length === 1 ? "box" : "boxes"} found by `
      + `${answer.detector}`);
}
