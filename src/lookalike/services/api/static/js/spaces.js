// Spaces: each embedding space, its definition, size, and which one is the default.
import { api, el } from "./api.js";

/** Fill the spaces table from the API. */
export async function loadSpaces() {
  const spaces = await api("/v1/spaces");
  const rows = spaces.map((space) => el("tr", {},
    el("td", {}, space.name, space.is_default ? el("span", { class: "badge", text: "default" }) : null),
    el("td", { text: space.backbone }),
    el("td", { text: space.layer }),
    el("td", { text: space.pooling }),
    el("td", { text: space.whitening ?? "none" }),
    el("td", { text: String(space.dim) }),
    el("td", { text: String(space.vector_count) }),
    el("td", {}, el("code", { text: JSON.stringify(space.options) }))));
  document.querySelector("#spaces-table tbody").replaceChildren(...rows);
}
