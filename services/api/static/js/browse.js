// Browse: the catalog page by page, filtered by collection and label, with delete.
import { api, el, guarded, say } from "./api.js";
import { keyedImage } from "./auth.js";

const $ = (id) => document.getElementById(id);
const page = { offset: 0, next: null, asked: 0 };
let openDetail = () => {};

function filters() {
  const params = new URLSearchParams({ offset: page.offset, limit: $("browse-limit").value });
  for (const name of ["collection", "label"]) {
    const value = $(`browse-${name}`).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function card(image) {
  const label = image.label ?? "no label";
  return el("li", { class: "card", "data-image-id": image.id },
    el("button", { class: "thumb", type: "button",
                   "aria-label": `Image ${image.id}, ${label}; show details`,
                   onclick: () => openDetail(image.id) },
      keyedImage(image.thumbnail_url, { alt: "", loading: "lazy" })),
    el("div", { class: "info" },
      el("span", { class: "score", text: `#${image.id}` }),
      el("span", { class: "muted", text: label, title: label }),
      el("span", { class: "muted", text: image.collection ?? "—" })),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "danger", "data-needs": "admin",
                     "aria-label": `Delete image ${image.id}`,
                     onclick: guarded(() => remove(image.id)) }, "Delete")));
}

async function remove(imageId) {
  if (!window.confirm(`Delete image ${imageId} from the catalog? This cannot be undone.`)) return;
  await api(`/v1/images/${imageId}`, { method: "DELETE" });
  say(`Image ${imageId} deleted`);
  await loadPage();
}

/** Load the page at the current offset with the current filters. */
export async function loadPage() {
  const asked = ++page.asked;
  const answer = await api(`/v1/images?${filters()}`);
  if (asked !== page.asked) return;  // a later load (new filters) answers instead
  page.next = answer.next_offset;
  $("browse-grid").replaceChildren(...answer.items.map(card));
  const first = answer.items.length ? answer.offset + 1 : 0;
  $("browse-page").textContent = `Images ${first}–${answer.offset + answer.items.length}`;
  $("browse-prev").disabled = answer.offset === 0;
  $("browse-next").disabled = answer.next_offset === null;
}

/** Wire the panel; `detail` opens the larger view of an image. */
export function setupBrowse(detail) {
  openDetail = detail;
  $("browse-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    page.offset = 0;
    await loadPage();
  }));
  $("browse-prev").addEventListener("click", guarded(async () => {
    page.offset = Math.max(0, page.offset - Number($("browse-limit").value));
    await loadPage();
  }));
  $("browse-next").addEventListener("click", guarded(async () => {
    if (page.next !== null) page.offset = page.next;
    await loadPage();
  }));
}
