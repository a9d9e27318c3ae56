// Jobs: start an ingest job and follow every job's progress live, training curves included.
import { api, el, guarded, say } from "./api.js";
import { keyedImage } from "./auth.js";

const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(["queued", "running"]);
const FAST_MS = 1000;
const SLOW_MS = 5000;
let timer = null;
let visible = false;

function eta(job) {
  const { done, total, rate_per_s: rate } = job.progress;
  if (!ACTIVE.has(job.state) || !rate || total <= done) return "—";
  const seconds = Math.round((total - done) / rate);
  return seconds < 90 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
}

function row(job) {
  const { done, total, rate_per_s: rate } = job.progress;
  const percent = total ? Math.floor((100 * done) / total) : 0;
  const errors = [job.error, ...job.errors].filter(Boolean);
  return el("tr", { "data-job-id": job.id, "data-state": job.state },
    el("td", { text: `#${job.id} ${job.kind}` }),
    el("td", { class: `state-${job.state}`, text: job.state }),
    el("td", {},
      el("progress", { max: total || 1, value: done, "aria-label": `Job ${job.id} progress` }),
      el("span", { class: "percent", text: ` ${percent}% (${done}/${total})` })),
    el("td", { text: rate ? `${rate}/s` : "—" }),
    el("td", { text: eta(job) }),
    el("td", { text: `${job.counts.added} / ${job.counts.duplicates} / ${job.counts.failed}` }),
    el("td", {}, errors.length
      ? el("details", {}, el("summary", { text: `${errors.length}` }),
          el("ul", {}, ...errors.map((text) => el("li", { text }))))
      : "—"));
}

function mapText(value) {
  return value === null || value === undefined ? "—" : value.toFixed(3);
}

/** A fine-tuning job's figures under its row: mAP before and now, and its curves. */
function trainingRow(job) {
  const training = job.training || {};
  const history = training.history || [];
  const last = history[history.length - 1];
  const figures = `validation mAP ${mapText(training.baseline_val_map)} before training, ` +
    (last ? `${mapText(last.val_map)} after epoch ${last.epoch}, loss ${last.loss}` : "no epoch yet") +
    (training.space ? `; created space ${training.space}` : "");
  return el("tr", { class: "training", "data-training-of": job.id },
    el("td", { colspan: 7 },
      el("p", { class: "training-figures", text: figures }),
      training.curves
        ? keyedImage(`/v1/jobs/${job.id}/curves.png?epochs=${history.length}`,
                     { class: "curves", alt: `Loss and validation mAP per epoch of job ${job.id}` })
        : ""));
}

function rows(job) {
  return job.kind === "finetune" ? [row(job), trainingRow(job)] : [row(job)];
}

/** Fill the jobs table; poll again soon while the panel is shown. */
export async function loadJobs() {
  clearTimeout(timer);
  const jobs = await api("/v1/jobs?limit=50");
  document.querySelector("#jobs-table tbody").replaceChildren(...jobs.flatMap(rows));
  if (visible) {
    const busy = jobs.some((job) => ACTIVE.has(job.state));
    timer = setTimeout(guarded(loadJobs), busy ? FAST_MS : SLOW_MS);
  }
}

/** Start or stop live updates as the panel is shown or hidden. */
export function showJobs(shown) {
  visible = shown;
  clearTimeout(timer);
  return shown ? loadJobs() : Promise.resolve();
}

/** Wire the ingest form. */
export function setupJobs() {
  $("job-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const paths = $("job-paths").value.split("\n").map((line) => line.trim()).filter(Boolean);
    const body = { kind: "ingest", paths, label_from_dir: $("job-label-from-dir").checked };
    const collection = $("job-collection").value.trim();
    if (collection) body.collection = collection;
    const job = await api("/v1/jobs", { method: "POST", body: JSON.stringify(body),
                                        headers: { "Content-Type": "application/json" } });
    say(`Job ${job.id} queued`);
    await loadJobs();
  }));
}
