// The larger view of one image: the original, its metadata, and why it matched the query.
import { api, el, guarded, say } from "./api.js";
import { showImage, showVideo } from "./auth.js";
import { clock, currentQuery, searchWithId } from "./search.js";

const $ = (id) => document.getElementById(id);
let shown = null;
let onDeleted = () => {};

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
  const params = new URLSearchParams({ result: shown });
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
  $("explain").hidden = false;
  $("explain").scrollIntoView({ block: "nearest" });
  say(`Explained in ${answer.took_ms.toFixed(0)} ms`);
}

async function remove() {
  const imageId = shown;
  if (!window.confirm(`Delete image ${imageId} from the catalog? This cannot be undone.`)) return;
  await api(`/v1/images/${imageId}`, { method: "DELETE" });
  $("detail").close();
  say(`Image ${imageId} deleted`);
  onDeleted(imageId);
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
  if (!dialog.open) dialog.showModal();
  await showClip(hit?.video ?? null);
  renderMeta(await api(`/v1/images/${imageId}`), hit);
  if (withExplain) await explain();
}

/** Wire the dialog's buttons; `deleted(id)` runs after an image is deleted. */
export function setupDetail({ deleted, showSearch }) {
  onDeleted = deleted;
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
