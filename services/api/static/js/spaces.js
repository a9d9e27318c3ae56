// Spaces: each embedding space, its definition, size, last evaluation, and which one is the
// default; any other can be made the default from here.
import { api, el, guarded, say } from "./api.js";
import { keyedImage } from "./auth.js";

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
}
