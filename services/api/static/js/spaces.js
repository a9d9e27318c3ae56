// Spaces: each embedding space, its definition, size, last evaluation, and which one is the
// default; any other can be made the default from here. Below the table, a look inside a
// space's backbone: its filters, the catalog patches one channel likes most (a job), and the
// saliency of an uploaded image.
import { ApiError, api, el, guarded, say } from "./api.js";
import { keyedImage, withKey } from "./auth.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 500;

const figure = (value, digits) => (value === null || value === undefined
  ? "—" : value.toFixed(digits));

/** The newest evaluation's figures, or a dash when the space was never evaluated. */
function evaluationCell(evaluation) {
  if (!evaluation) return el("td", { class: "evaluation", text: "—" });
  const when = new Date(evaluation.evaluated_at).toLocaleString();
  return el("td", { class: "evaluation" },
    el("strong", { text: `mAP ${figure(evaluation.map, 3)}` }),
    ` · P@1 ${figure(evaluation.precision_at_1, 3)} · P@10 ${figure(evaluation.precision_at_10, 3)}`,
    el("br"),
    el("span", { class: "muted",
                 text: `${evaluation.benchmark}: ${evaluation.queries} queries, ` +
                       `${evaluation.gallery} gallery · ${when}` }));
}

/** Switch the default; a refusal (409: the space is not filled yet) says why. */
const makeDefault = (name) => guarded(async () => {
  await api(`/v1/spaces/${encodeURIComponent(name)}/default`, { method: "POST" });
  await loadSpaces();
  say(`${name} is now the default space`);
});

/** Show the space's first-layer filters below the table. */
function showFilters(name) {
  const figure = document.querySelector("#space-filters");
  figure.replaceChildren(
    keyedImage(`/v1/spaces/${encodeURIComponent(name)}/visualize/filters.png`,
               { class: "filters", alt: `First-layer filters of space ${name}` }),
    el("figcaption", { text: `First-layer filters of ${name}, each stretched to its own range` }));
  figure.hidden = false;
}

function filtersCell(space) {
  return el("td", {}, el("button", { type: "button", class: "secondary",
                                     "aria-label": `Show the first-layer filters of ${space.name}`,
                                     onclick: () => showFilters(space.name) }, "Filters"));
}

function actionCell(space) {
  if (space.is_default) return el("td", { text: "current" });
  return el("td", {}, el("button", { type: "button", class: "secondary",
                                     "data-needs": "admin",
                                     "aria-label": `Make ${space.name} the default space`,
                                     onclick: makeDefault(space.name) }, "Make default"));
}

/** Fill the spaces table from the API. */
export async function loadSpaces() {
  const spaces = await api("/v1/spaces");
  const rows = spaces.map((space) => el("tr", { "data-space": space.name },
    el("td", {}, space.name, space.is_default ? el("span", { class: "badge", text: "default" }) : null),
    el("td", { text: space.backbone }),
    el("td", { text: space.layer }),
    el("td", { text: space.pooling }),
    el("td", { text: space.whitening ?? "none" }),
    el("td", { text: String(space.dim) }),
    el("td", { class: "vectors", text: String(space.vector_count) +
                                       (space.lag ? ` (lacks ${space.lag})` : "") }),
    evaluationCell(space.last_evaluation),
    el("td", {}, el("code", { text: JSON.stringify(space.options) })),
    filtersCell(space),
    actionCell(space)));
  document.querySelector("#spaces-table tbody").replaceChildren(...rows);
  const chosen = $("visual-space").value;
  $("visual-space").replaceChildren(...spaces.map((space) => el("option", {
    value: space.name, text: space.name,
    selected: chosen ? space.name === chosen : space.is_default })));
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** Start a top-patches job for the chosen space, follow it, then show its sheet. */
async function findTopPatches(event) {
  event.preventDefault();
  const space = $("visual-space").value;
  const layer = Number($("top-layer").value);
  const channel = Number($("top-channel").value);
  let job = await api("/v1/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
                                    body: JSON.stringify({ kind: "top-patches", space, layer, channel }) });
  say(`Job ${job.id}: looking for the top patches over the catalog…`);
  while (job.state === "queued" || job.state === "running") {
    await sleep(POLL_MS);
    job = await api(`/v1/jobs/${job.id}`);
  }
  if (job.state !== "succeeded") throw new ApiError(`job ${job.id} ${job.state}: ${job.error}`);
  const ids = job.top_patches.top.map((hit) => `#${hit.image_id} (${hit.response.toFixed(2)})`);
  const figure = $("space-top-patches");
  figure.replaceChildren(
    keyedImage(`/v1/jobs/${job.id}/top-patches.png`, { class: "top-patches", "data-job-id": job.id,
               alt: `Top patches of block ${layer} channel ${channel} in space ${space}` }),
    el("figcaption", { text: `Block ${layer}, channel ${channel} of ${space}, best first: ` +
                             ids.join(", ") }));
  figure.hidden = false;
  say(`Job ${job.id} done`);
}

/** Upload an image and show where its similarity comes from, over it. */
async function showSaliency(event) {
  event.preventDefault();
  const space = $("visual-space").value;
  const match = $("saliency-match").value;
  const form = new FormData();
  form.append("file", $("saliency-file").files[0]);
  const path = `/v1/spaces/${encodeURIComponent(space)}/visualize/saliency` +
               (match ? `?match=${encodeURIComponent(match)}` : "");
  const response = await fetch(path, { method: "POST", body: form, headers: withKey(path) });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(`${response.status}: ${body.detail || body.error || response.statusText}`);
  }
  const image = el("img", { class: "saliency", alt: `Saliency of the uploaded image in ${space}` });
  image.src = URL.createObjectURL(await response.blob());
  const figure = $("space-saliency");
  figure.replaceChildren(image, el("figcaption", {
    text: `Saliency in ${space}: where the similarity to ` +
          (match ? `image ${match}` : "the image itself") + " comes from" }));
  figure.hidden = false;
}

/** Wire the look-inside forms. */
export function setupSpaces() {
  $("top-patches-form").addEventListener("submit", guarded(findTopPatches));
  $("saliency-form").addEventListener("submit", guarded(showSaliency));
}
