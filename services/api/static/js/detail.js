// The larger view of one image: the original, its metadata, and why it matched the query.
import { api, el, guarded, say } from "./api.js";
import { keyedUrl, showImage, showVideo } from "./auth.js";
import { boxName, boxOverlay, boxText, clearOverlay, showOverlay, svg } from "./boxes.js";
import { clock, currentQuery, queryUrl, searchWithId } from "./search.js";

const $ = (id) => document.getElementById(id);
let shown = null;
let onDeleted = () => {};
let showSearchTab = () => {};

const FIELDS = [["id", "Id"], ["label", "Label"], ["collection", "Collection"],
  ["width", "Width"], ["height", "Height"], ["format", "Format"], ["byte_size", "Bytes"],
  ["status", "Status"], ["source_uri", "Source"], ["sha256", "SHA-256"],
  ["created_at", "Added"]];

function renderMeta(image, hit) {
  const rows = hit ? [["Score", hit.score.toFixed(4)]] : [];
  for (const [key, name] of FIELDS) rows.push([name, image[key] ?? "—"]);
  $("detail-meta").replaceChildren(...rows.flatMap(([name, value]) =>
    [el("dt", { text: name }), el("dd", { text: String(value) })]));
}

async function explain() {
  const query = currentQuery();
  if (!query || !shown) return;
  say("Computing the heat maps…");
  const params = new URLSearchParams({ result: shown, keypoints: "true" });
  const space = $("space").value;
  if (space) params.set("space", space);
  let answer;
  if (query.kind === "id") {
    params.set("query", query.id);
    answer = await api(`/v1/explain?${params}`);
  } else {
    const form = new FormData();
    form.append("file", query.blob, query.blob.name || "pasted-image");
    answer = await api(`/v1/explain?${params}`, { method: "POST", body: form });
  }
  $("explain-query").src = `data:image/png;base64,${answer.query.overlay_png}`;
  $("explain-result").src = `data:image/png;base64,${answer.result.overlay_png}`;
  $("explain-summary").textContent =
    `Cosine similarity of the two descriptors: ${answer.score.toFixed(3)}` +
    (answer.exact ? "; each map adds up to it." : " (maps approximate this pooling).");
  await drawKeypoints(answer.keypoints, query);
  $("explain").hidden = false;
  $("explain").scrollIntoView({ block: "nearest" });
  say(`Explained in ${answer.took_ms.toFixed(0)} ms`);
}

const PAIR_HEIGHT = 300;
const PAIR_GAP = 24;

/** The query and the result side by side, a line joining each matched keypoint pair (the
 * RANSAC inliers of the SIFT matches, in each picture's original pixels). */
async function drawKeypoints(found, query) {
  const figure = $("explain-keypoints");
  figure.querySelector("svg")?.remove();
  const [qw, qh] = found.query_size;
  const [rw, rh] = found.result_size;
  const qs = PAIR_HEIGHT / qh;
  const rs = PAIR_HEIGHT / rh;
  const left = qw * qs;
  const width = left + PAIR_GAP + rw * rs;
  const [queryHref, resultHref] = await Promise.all([queryUrl(query),
                                                     keyedUrl(`/v1/images/${shown}/file`)]);
  const drawn = svg("svg", { class: "keypoints", viewBox: `0 0 ${width} ${PAIR_HEIGHT}`,
                             role: "img", "data-pairs": String(found.pairs.length),
                             "aria-label": `${found.pairs.length} matched keypoint pairs` },
    svg("image", { href: queryHref, x: 0, y: 0, width: left, height: PAIR_HEIGHT,
                   preserveAspectRatio: "none" }),
    svg("image", { href: resultHref, x: left + PAIR_GAP, y: 0, width: rw * rs,
                   height: PAIR_HEIGHT, preserveAspectRatio: "none" }),
    ...found.pairs.map(([qx, qy, rx, ry]) => svg("line", {
      x1: qx * qs, y1: qy * qs, x2: left + PAIR_GAP + rx * rs, y2: ry * rs,
      "vector-effect": "non-scaling-stroke" })));
  figure.prepend(drawn);
  $("keypoints-caption").textContent = found.inliers
    ? `${found.inliers} keypoints agree under one homography (RANSAC inliers of `
      + `${found.matches} SIFT matches${found.mirrored ? ", the query mirrored" : ""}); `
      + `${found.pairs.length} drawn.`
    : `No geometric match: ${found.matches} SIFT matches, none consistent under one `
      + "homography (not a copy of the same picture).";
  figure.hidden = false;
}

async function remove() {
  const imageId = shown;
  if (!window.confirm(`Delete image ${imageId} from the catalog? This cannot be undone.`)) return;
  await api(`/v1/images/${imageId}`, { method: "DELETE" });
  $("detail").close();
  say(`Image ${imageId} deleted`);
  onDeleted(imageId);
}

/** The image's regions: listed, drawn over the picture, each a search with its box. */
async function showRegions(imageId) {
  const answer = await api(`/v1/images/${imageId}/regions`);
  if (shown !== imageId) return;
  const frame = $("detail-frame");
  clearOverlay(frame, "found");
  if (answer.regions.length) {
    showOverlay(frame, boxOverlay(answer.width, answer.height, answer.regions));
  }
  $("detail-regions").replaceChildren(...(answer.regions.length ? answer.regions.map((r) =>
    el("li", { "data-region-id": r.id, "data-box": boxText(r.box) },
      el("span", { text: `${boxName(r)} at ${boxText(r.box)} (${r.detector})` }),
      el("button", { type: "button", class: "secondary",
                     "aria-label": `Search with region ${r.id} (${r.label ?? "object"})`,
                     onclick: guarded(async () => {
                       $("detail").close();
                       showSearchTab();
                       await searchWithId(imageId, r.box);
                     }) }, "Search this region")))
    : [el("li", { class: "muted", text: "None found yet (run a detect job)." })]));
}

/** For a frame of a clip, play the clip from the frame's second; otherwise stop any clip. */
async function showClip(video) {
  const player = $("detail-video");
  $("detail-clip").hidden = !video;
  $("detail-original").hidden = Boolean(video);
  if (!video) {
    player.pause();
    player.removeAttribute("src");
    return;
  }
  $("detail-clip-caption").textContent =
    `Video ${video.id} from ${clock(video.t)} (of ${clock(video.duration)})`;
  await showVideo(player, video.file_url, video.t);
  await player.play().catch(() => {});  // a refused autoplay leaves the controls to the user
}

/** Open the view of `imageId`; `hit` is its search result, `explain` opens the heat maps. */
export async function openDetail(imageId, { hit = null, explain: withExplain = false } = {}) {
  shown = imageId;
  const dialog = $("detail");
  $("explain").hidden = true;
  $("detail-title").textContent = `Image ${imageId}`;
  showImage($("detail-image"), `/v1/images/${imageId}/file`);
  $("detail-image").alt = `Image ${imageId}`;
  $("detail-explain").hidden = !(hit && currentQuery());
  $("detail-meta").replaceChildren();
  $("detail-regions").replaceChildren();
  $("explain-keypoints").hidden = true;
  clearOverlay($("detail-frame"), "found");
  if (!dialog.open) dialog.showModal();
  await showClip(hit?.video ?? null);
  renderMeta(await api(`/v1/images/${imageId}`), hit);
  await showRegions(imageId);
  if (withExplain) await explain();
}

/** Wire the dialog's buttons; `deleted(id)` runs after an image is deleted. */
export function setupDetail({ deleted, showSearch }) {
  onDeleted = deleted;
  showSearchTab = showSearch;
  $("detail").addEventListener("close", () => $("detail-video").pause());
  $("detail-explain").addEventListener("click", guarded(explain));
  $("detail-delete").addEventListener("click", guarded(remove));
  $("detail-search").addEventListener("click", guarded(async () => {
    const imageId = shown;
    $("detail").close();
    showSearch();
    await searchWithId(imageId);
  }));
}
