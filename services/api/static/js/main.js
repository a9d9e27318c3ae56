// The page: tabs kept in the URL hash, each panel wired once and loaded when shown.
import { guarded, say } from "./api.js";
import { can, setupKeyButton, signIn } from "./auth.js";
import { loadPage, setupBrowse } from "./browse.js";
import { openDetail, setupDetail } from "./detail.js";
import { loadDuplicates, setupDuplicates } from "./duplicates.js";
import { setupJobs, showJobs } from "./jobs.js";
import { setupSearch } from "./search.js";
import { loadSpaces, setupSpaces } from "./spaces.js";

const TABS = ["search", "browse", "jobs", "spaces", "duplicates"];
const ON_SHOW = { browse: loadPage, spaces: loadSpaces, duplicates: loadDuplicates };

const ALLOWED = { jobs: "ingest", duplicates: "ingest" };

function current() {
  const name = location.hash.slice(1);
  return TABS.includes(name) && can(ALLOWED[name] ?? "search") ? name : "search";
}

async function show() {
  const name = current();
  say("");
  for (const tab of TABS) {
    document.querySelector(`[data-panel="${tab}"]`).hidden = tab !== name;
    const link = document.querySelector(`[data-tab="${tab}"]`);
    if (tab === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  await showJobs(name === "jobs");
  if (ON_SHOW[name]) await ON_SHOW[name]();
}

const showSearch = () => { location.hash = "search"; };
const deleted = guarded(async (imageId) => {
  document.querySelectorAll(`#results [data-image-id="${imageId}"]`).forEach((n) => n.remove());
  if (current() === "browse") await loadPage();
});

setupDetail({ deleted, showSearch });
setupBrowse(openDetail);
setupJobs();
setupSpaces();
setupDuplicates(openDetail);
window.addEventListener("hashchange", guarded(show));
setupKeyButton();
guarded(async () => {
  await signIn();
  await setupSearch(openDetail);
  await show();
  document.body.dataset.ready = "true";
})();
