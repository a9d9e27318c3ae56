"""The `lookalike` command: every command registered here, in one table, and imported only when
it runs, so `lookalike --help` loads neither torch nor faiss."""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperGroup

from lookalike.retrieval.errors import LookalikeError
from lookalike.services.config import get_settings
from lookalike.services.openmp import set_openmp_threads


@dataclass(frozen=True)
class Entry:
    """A command: where its function lives ("module:function") and its one-line help, kept
    here so that listing the commands imports none of them (a test checks it matches)."""

    target: str
    help: str


_CLI = "lookalike.services.cli"
GROUPS: dict[str, str] = {
    "index": "Build, rebuild, verify, snapshot and follow indexes (FAISS, Milvus) "
             "from the catalog.",
    "spaces": "Embedding spaces: create, fill, list, switch, delete.",
    "weights": "Backbone weight files.",
    "jobs": "Background jobs and their progress.",
    "bench": "Measure ingest and search speed on this machine.",
    "sample": "The sample collection used by `make demo`.",
    "keys": "API keys and their scopes.",
    "storage": "The data folder's files checked against the catalog.",
    "text": "Text-CNN topic classifiers for captions: train, classify, list.",
    "visualize": "What a space's backbone responds to, as PNG files.",
    "video": "Video classifiers: the 3-D convolution against frame averaging.",
    "detect": "Detectors on the MobileNetV2 trunk: train, evaluate, run over the catalog.",
}
COMMANDS: dict[str, Entry] = {
    "init": Entry(f"{_CLI}.catalog:init",
                  "Create the catalog, or migrate it to the newest schema."),
    "ingest": Entry(f"{_CLI}.ingest:ingest", "Add images and videos to the catalog and the "
                    "index; files already there are reported, not re-added."),
    "search": Entry(f"{_CLI}.search:search",
                    "Print the k catalogued images most like IMAGE (or --id N, or --url URL), "
                    "best first."),
    "serve": Entry(f"{_CLI}.serve:serve", "Serve the HTTP API (OpenAPI docs at /docs)."),
    "worker": Entry(f"{_CLI}.jobs:worker",
                    "Run jobs from LOOKALIKE_BROKER_URL (Celery over Redis) until stopped."),
    "evaluate": Entry(f"{_CLI}.evaluate:evaluate_command", "Retrieval quality of one or more "
                      "spaces on a benchmark."),
    "finetune": Entry(f"{_CLI}.finetune:finetune_command", "Fine-tune on the catalog's labels."),
    "index build": Entry(f"{_CLI}.index:index_build", "Choose Flat / HNSW / IVF-Flat / IVF-PQ "
                         "for a space, tune it on held-out queries."),
    "index rebuild": Entry(f"{_CLI}.index:index_rebuild", "Recreate indexes from the catalog "
                           "alone (the source of truth) and snapshot them."),
    "index verify": Entry(f"{_CLI}.index:index_verify", "Compare each index with the catalog: "
                          "missing, extra and stale ids; exit 1 on a mismatch."),
    "index follow": Entry(f"{_CLI}.index:index_follow", "Apply the catalog's change log to "
                          "every Milvus space's collection, polling until stopped (or --once)."),
    "index serve-milvus": Entry(f"{_CLI}.index:index_serve_milvus", "Serve milvus-lite over "
                                "gRPC until stopped, so that the processes on this machine "
                                "share one Milvus."),
    "index snapshot": Entry(f"{_CLI}.index:index_snapshot", "Write each index, caught up with "
                            "the catalog, as a new snapshot (atomically)."),
    "spaces create": Entry(f"{_CLI}.spaces:spaces_create", "Add an embedding space; fill it "
                           "with `lookalike spaces reindex NAME`."),
    "spaces reindex": Entry(f"{_CLI}.spaces:spaces_reindex", "Embed every catalogued image "
                            "into the space as a job, batch by batch."),
    "spaces list": Entry(f"{_CLI}.spaces:spaces_list", "Every embedding space: definition, "
                         "vector count, lag behind the catalog, default, last evaluation."),
    "spaces set-default": Entry(f"{_CLI}.spaces:spaces_set_default", "Make a space the default "
                                "of every API process, at once (one transaction)."),
    "spaces delete": Entry(f"{_CLI}.spaces:spaces_delete", "Delete a space: its vectors, index "
                           "files and evaluations; never another space's."),
    "weights install": Entry(f"{_CLI}.weights:weights_install", "Put a weight file where the "
                             "registry finds it ($TORCH_HOME/hub/checkpoints)."),
    "weights fetch": Entry(f"{_CLI}.weights:weights_fetch", "Download a backbone's ImageNet "
                           "weights with torchvision (progress bar, sha256 check)"),
    "weights list": Entry(f"{_CLI}.weights:weights_list", "Each backbone and the first place "
                          "its weights resolve from (or that none do)."),
    "jobs ingest": Entry(f"{_CLI}.jobs:jobs_ingest", "Submit an ingest job: on the workers with "
                         "LOOKALIKE_BROKER_URL, else run it here."),
    "jobs list": Entry(f"{_CLI}.jobs:jobs_list", "The newest jobs first."),
    "jobs show": Entry(f"{_CLI}.jobs:jobs_show", "State, progress, counts and errors of one job."),
    "jobs cancel": Entry(f"{_CLI}.jobs:jobs_cancel",
                         "Cancel a queued or running job (batches already running finish)."),
    "jobs retry": Entry(f"{_CLI}.jobs:jobs_retry",
                        "Run a failed or cancelled job's unfinished batches again."),
    "bench ingest": Entry(f"{_CLI}.bench:bench_ingest", "Model-only vs end-to-end (files to "
                          "catalog and index) vs naive per-image throughput."),
    "bench forward": Entry(f"{_CLI}.bench:bench_forward", "The default space's model speed for "
                           "each number of images per call (forward_batch)."),
    "bench search": Entry(f"{_CLI}.bench:bench_search", "p50/p99 of search-by-id over HTTP (a "
                          "real `lookalike serve`) next to raw FAISS time."),
    "bench load": Entry(f"{_CLI}.bench:bench_load", "Throughput and p50/p95/p99 per route of "
                        "two API processes under concurrent searches."),
    "bench speed": Entry(f"{_CLI}.bench:bench_speed", "Engines' images/s and the search "
                         "paths' latencies, as ratios from one run."),
    "bench startup": Entry(f"{_CLI}.bench:bench_startup", "Seconds until a fresh process serves "
                           "searches on N vectors."),
    "bench chaos": Entry(f"{_CLI}.bench:bench_chaos", "A crash loop: ingest through a worker "
                         "and an API process, SIGKILL one at random, restart it, and check "
                         "nothing is missing, phantom or doubled; exit 1 on a finding."),
    "bench index": Entry(f"{_CLI}.index:bench_index_command", "The index choice on synthetic "
                         "clustered data: recall@10, queries/s, bytes/vector (with --backend: "
                         "one backend's recall@10, p50/p99, batched queries/s and memory)."),
    "bench zoo": Entry(f"{_CLI}.bench:bench_zoo", "The textbook's networks trained from "
                       "scratch on Fashion-MNIST with one budget each"),
    "visualize augmentations": Entry(f"{_CLI}.visualize:visualize_augmentations", "Write a "
                                     "grid PNG of copy-detection views of the bundled photos "
                                     "(original first)."),
    "visualize filters": Entry(f"{_CLI}.visualize:visualize_filters", "Write the first-layer "
                               "filters of a space's backbone as a grid PNG."),
    "visualize top-patches": Entry(f"{_CLI}.visualize:visualize_top_patches", "Find the 9 "
                                   "catalog image patches that excite one channel of one "
                                   "block most"),
    "visualize saliency": Entry(f"{_CLI}.visualize:visualize_saliency", "Write the saliency of "
                                "IMAGE's similarity score (its gradient on the pixels) over "
                                "it."),
    "keys create": Entry(f"{_CLI}.keys:keys_create", "Create an API key and print its secret "
                         "once (only its sha256 is kept)."),
    "keys list": Entry(f"{_CLI}.keys:keys_list",
                       "Every key: name, scopes, created, revoked (never the secret)."),
    "keys revoke": Entry(f"{_CLI}.keys:keys_revoke",
                         "Revoke a key: it stops authenticating at once, in every API process."),
    "storage verify": Entry(f"{_CLI}.storage:storage_verify", "Check the data folder's files "
                            "against the catalog: files no row names (orphans), and rows whose "
                            "file is missing or does not hash to its sha256; exit 1 if any "
                            "remain."),
    "duplicates": Entry(f"{_CLI}.duplicates:duplicates", "Cluster the space's images that "
                        "are copies of each other (range search + connected components)"),
    "backup": Entry(f"{_CLI}.backup:backup", "Copy the home while the service runs: the "
                    "SQLite catalog (online backup), originals, weights, whitening and newest "
                    "valid index snapshots, with a manifest of sha256 sums."),
    "restore": Entry(f"{_CLI}.backup:restore", "Restore a backup into an empty home "
                     "(LOOKALIKE_HOME), once every file in FOLDER matches its manifest; "
                     "nothing is written before that check passes."),
    "text train": Entry(f"{_CLI}.text:text_train", "Train a text-CNN topic classifier as a "
                        "job and print it next to its baselines."),
    "text classify": Entry(f"{_CLI}.text:text_classify", "Print the topic of each text, its "
                           "probability, and whether it is a confident answer."),
    "text apply": Entry(f"{_CLI}.text:text_apply", "Give every captioned image in the "
                        "catalog its topic, as a job run page by page."),
    "text models": Entry(f"{_CLI}.text:text_models",
                         "Every text model: name, classes, held-out figures, default."),
    "detect train": Entry(f"{_CLI}.detect:detect_train", "Train a detector on the ImageNet "
                          "MobileNetV2 trunk as a job and publish it."),
    "detect evaluate": Entry(f"{_CLI}.detect:detect_evaluate", "Score a detector on a COCO "
                             "file: mAP@[.5:.95], mAP@.5 (pycocotools)."),
    "detect crops": Entry(f"{_CLI}.detect:detect_crops", "Name objects from their true "
                          "boxes alone: ImageNet trunk features of each crop and a linear "
                          "head."),
    "detect run": Entry(f"{_CLI}.detect:detect_run", "Run a detector over the catalog as a "
                        "job and store its boxes as regions."),
    "detect list": Entry(f"{_CLI}.detect:detect_list", "The trained detectors: architecture, "
                         "classes, side and held-out figures."),
    "sample build": Entry(f"{_CLI}.sample:sample_build", "Write the bundled photos and "
                          "Fashion-MNIST images (by class folder); reuses what exists."),
    "video compare": Entry(f"{_CLI}.video:video_compare", "Train both video classifiers on "
                           "the motion and appearance tasks."),
    "video train": Entry(f"{_CLI}.video:video_train", "Train a video classifier (3-D CNN or "
                         "frame averaging) as a job; it labels the videos ingested next."),
    "sample clips": Entry(f"{_CLI}.sample:sample_clips", "Write the video classifiers' tasks "
                          "as mp4 clips."),
    "sample frames": Entry(f"{_CLI}.sample:sample_frames", "Write tiles of spaced video frames "
                           "as PNG photos."),
    "sample scenes": Entry(f"{_CLI}.sample:sample_scenes", "Write detection scenes (objects "
                           "on photo crops) as PNG files and COCO JSON."),
    "sample hint": Entry(f"{_CLI}.sample:sample_hint",
                         "Print example queries to paste once `lookalike serve` runs."),
}


def load_command(name: str) -> Any:
    """Import the function behind `name` and make it a command, as Typer would."""
    module, function = COMMANDS[name].target.split(":")
    single = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    single.command(name=name.split()[-1])(getattr(importlib.import_module(module), function))
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """A group whose commands come from the table above, each imported when it is run; its
    help is plain (not rich), which lists the commands from the table alone."""

    def __init__(self, *, prefix: str = "", **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "rich_markup_mode": None})
        self.prefix = prefix

    def _children(self) -> dict[str, str]:
        """Name at this level -> one-line help, for commands and sub-groups alike."""
        depth = len(self.prefix.split())
        found = {} if self.prefix else dict(GROUPS)
        for name, entry in COMMANDS.items():
            words = name.split()
            if len(words) == depth + 1 and " ".join(words[:depth]) == self.prefix:
                found[words[-1]] = entry.help
        return found

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(self._children())

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if not self.prefix and cmd_name in GROUPS:
            return LazyGroup(name=cmd_name, prefix=cmd_name, help=GROUPS[cmd_name],
                             no_args_is_help=True)
        full = f"{self.prefix} {cmd_name}".strip()
        return load_command(full) if full in COMMANDS else None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """List the commands from the table, importing none of them."""
        with formatter.section("Commands"):
            formatter.write_dl(sorted(self._children().items()))


app = typer.Typer(cls=LazyGroup, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="lookalike: search a collection of images by example.")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                               help="log what the services do")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run() -> None:
    """Entry point: library errors and invalid LOOKALIKE_* settings become one clear line
    and exit status 1. FAISS's thread count goes into the environment first, before a
    command's imports load it."""
    try:
        set_openmp_threads(get_settings())
        app()
    except LookalikeError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        wrong = "; ".join(f"LOOKALIKE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                          for e in exc.errors())
        _fail(f"invalid setting ({wrong}); fix it in the environment")


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(1)
