// Duplicates: run a duplicates job over a space, list its clusters, export them, and keep
// one image of a cluster (deleting the others) in one action.
import { ApiError, api, el, guarded, say } from "./api.js";
import { can, keyedImage, withKey } from "./auth.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 500;
let shownJob = null;
let openDetail = () => {};

async function loadSpaces() {
  const spaces = await api("/v1/spaces");
  $("duplicates-space").replaceChildren(...spaces.map((space) => el("option", {
    value: space.name, selected: space.is_default,
    text: `${space.name}${space.is_default ? " · default" : ""}`,
  })));
}

/** When the tab is shown: the spaces, and the clusters of the newest duplicates job. */
export async function loadDuplicates() {
  await loadSpaces();
  if (shownJob !== null) return;
  const jobs = await api("/v1/jobs?limit=100");
  const last = jobs.find((job) => job.kind === "duplicates" && job.state === "succeeded");
  if (last) await showClusters(last);
}

async function waitFor(jobId) {
  for (;;) {
    const job = await api(`/v1/jobs/${jobId}`);
    if (!["queued", "running"].includes(job.state)) return job;
    say(`Job ${jobId} ${job.state}…`);
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
  }
}

async function findDuplicates() {
  const body = { kind: "duplicates", space: $("duplicates-space").value || undefined };
  const threshold = $("duplicates-threshold").value.trim();
  if (threshold) body.threshold = Number(threshold);
  const queued = await api("/v1/jobs", { method: "POST", body: JSON.stringify(body),
                                        headers: { "Content-Type": "application/json" } });
  const job = await waitFor(queued.id);
  if (job.state !== "succeeded") {
    throw new ApiError(`duplicates job ${job.id} ${job.state}: ${job.error ?? "see Jobs"}`);
  }
  await showClusters(job);
}

function member(cluster, number, imageId) {
  const resolved = cluster.resolved ?? null;
  const gone = resolved && resolved.kept !== imageId;
  const kept = resolved && resolved.kept === imageId;
  const source = cluster.sources[cluster.ids.indexOf(imageId)] || `image ${imageId}`;
  return el("li", { class: `card${gone ? " gone" : ""}`, "data-image-id": imageId },
    el("button", { class: "thumb", type: "button", disabled: gone,
                   "aria-label": `Image ${imageId} of cluster ${number}; show details`,
                   onclick: () => openDetail(imageId) },
      gone ? el("span", { class: "muted", text: "deleted" })
        : keyedImage(`/v1/images/${imageId}/thumbnail`, { alt: "", loading: "lazy" })),
    el("div", { class: "info" },
      el("span", { class: "score", text: `#${imageId}${kept ? " · kept" : ""}` }),
      el("span", { class: "muted", text: source, title: source })),
    el("div", { class: "actions", "data-needs": "admin" },
      resolved || !can("admin") ? null : el("button", {
        type: "button", class: "danger",
        "aria-label": `Keep image ${imageId}, delete the other ${cluster.ids.length - 1} `
          + `of cluster ${number}`,
        onclick: guarded(() => keep(number, imageId, cluster.ids.length - 1)),
      }, "Keep this one, delete the others")));
}

function clusterItem(cluster, number) {
  const state = cluster.resolved ? ` · resolved: kept #${cluster.resolved.kept}` : "";
  return el("li", { class: "cluster", "data-cluster": number,
                    "data-resolved": cluster.resolved ? "true" : null },
    el("p", { class: "muted", text: `Cluster ${number}: ${cluster.ids.length} images, `
      + `similarity ${cluster.worst.toFixed(3)}–${cluster.best.toFixed(3)}${state}` }),
    el("ol", { class: "grid" }, ...cluster.ids.map((id) => member(cluster, number, id))));
}

async function showClusters(job) {
  shownJob = job.id;
  const report = await api(`/v1/jobs/${job.id}/duplicates`);
  const open = report.clusters.filter((cluster) => !cluster.resolved).length;
  $("duplicates-summary").textContent = `Job ${job.id}: ${report.clusters.length} clusters `
    + `(${open} not resolved) over ${report.images} images in space ${report.space} at `
    + `similarity ≥ ${report.threshold.toFixed(3)} (${report.threshold_from}); `
    + `${report.extras} extra copies when found.`;
  $("duplicates-export").hidden = false;
  $("clusters").replaceChildren(...report.clusters.map((c, i) => clusterItem(c, i + 1)));
  say(`${report.clusters.length} duplicate clusters`);
}

async function keep(number, imageId, others) {
  if (!window.confirm(`Keep image ${imageId} and delete the ${others} other image(s) of `
                      + `cluster ${number}? This cannot be undone.`)) return;
  const cluster = await api(`/v1/jobs/${shownJob}/duplicates/${number}/keep`, {
    method: "POST", body: JSON.stringify({ image_id: imageId }),
    headers: { "Content-Type": "application/json" } });
  await showClusters({ id: shownJob });
  say(`Kept image ${imageId}; deleted ${cluster.resolved.deleted.join(", ") || "none"}`);
}

/** Download the clusters as CSV or JSON (fetched with the key, saved from a blob). */
async function download(format) {
  const url = `/v1/jobs/${shownJob}/duplicates?format=${format}`;
  const response = await fetch(url, { headers: withKey(url) });
  if (!response.ok) throw new ApiError(`${response.status}: cannot export the clusters`);
  const link = el("a", { href: URL.createObjectURL(await response.blob()),
                         download: `duplicates-${shownJob}.${format}` });
  document.body.append(link);
  link.click();
  link.remove();
}

/** Wire the form and the export buttons; `detail` opens an image's larger view. */
export function setupDuplicates(detail) {
  openDetail = detail;
  $("duplicates-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    say("Finding duplicates…");
    await findDuplicates();
  }));
  $("export-csv").addEventListener("click", guarded(() => download("csv")));
  $("export-json").addEventListener("click", guarded(() => download("json")));
}
