"""`lookalike text ...`: train a text-CNN topic classifier as a job (with its baselines in
one table), classify texts, list the text models."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from lookalike.services.catalog import textmodels
from lookalike.services.cli.finetune import follow_epochs
from lookalike.services.config import get_settings
from lookalike.services.errors import InvalidRequest
from lookalike.services.jobs import runner as jobs
from lookalike.services.setup import open_runtime
from lookalike.services.text.benchmark import Row, baseline_rows, cnn_row
from lookalike.services.text.corpus import split_texts
from lookalike.services.text.request import TextTrainRequest
from lookalike.services.text.topics import classify_texts

console = Console()
status = Console(stderr=True)


def text_train(
    name: Annotated[str, typer.Argument(help="name of the text model the job creates")],
    source: Annotated[Path | None, typer.Option("--from", help="a folder of CLASS/*.txt, or "
                                                "a .csv with text and label columns")] = None,
    from_catalog: Annotated[bool, typer.Option("--from-catalog", help="the catalog's "
                                               "captions, labelled by image label")] = False,
    collection: Annotated[str | None, typer.Option(help="--from-catalog: this collection")
                          ] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many texts (stratified)")
                     ] = None,
    epochs: Annotated[int, typer.Option()] = 8,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option()] = 5e-3,
    max_length: Annotated[int, typer.Option(help="tokens read per text")] = 256,
    vocab_size: Annotated[int, typer.Option(help="WordPiece vocabulary")] = 10_000,
    embed_dim: Annotated[int, typer.Option()] = 64,
    channels: Annotated[int, typer.Option(help="filters per width")] = 64,
    seed: Annotated[int, typer.Option()] = 0,
    default: Annotated[bool, typer.Option(help="make it the model ingest applies")] = True,
    baselines: Annotated[str, typer.Option(help="comma-separated baselines to score on the "
                                           "same split: majority, tfidf, minilm; '' for none")
                         ] = "majority,tfidf,minilm",
    as_json: Annotated[bool, typer.Option("--json", help="print the table as JSON")] = False,
) -> None:
    """Train a text-CNN topic classifier as a job and print it next to its baselines.

    Accuracy and macro-F1 are on the held-out 20 % (stratified, --seed); the job reports
    loss and held-out accuracy per epoch, checkpoints every epoch (a killed job resumes with
    `lookalike jobs retry`), and ends with text model NAME."""
    try:
        request = TextTrainRequest(
            name=name, source=str(source) if source else None, from_catalog=from_catalog,
            collection=collection, limit=limit, epochs=epochs, batch_size=batch_size, lr=lr,
            max_length=max_length, vocab_size=vocab_size, embed_dim=embed_dim,
            channels=channels, seed=seed, make_default=default)
    except ValidationError as error:
        raise typer.BadParameter(str(error)) from error
    with open_runtime(get_settings()) as runtime:
        job = jobs.submit_text_train(runtime, request)
        status.print(f"text-train job {job.id} queued")
        follow_epochs(runtime, job.id, epochs, metric="held-out accuracy")
        final = jobs.describe(jobs.get_job(runtime, job.id))
        if final["state"] != "succeeded":
            status.print(f"job {job.id} {final['state']}: {final['error']}")
            raise typer.Exit(1)
        train, held_out = split_texts(runtime, request, runtime.settings.layout.job(job.id))
    wanted = {_BASELINE_NAMES[b.strip()] for b in baselines.split(",") if b.strip()}
    rows = [cnn_row(name, final["training"]["figures"]),
            *baseline_rows(train, held_out, names=wanted)]
    _print(rows, as_json=as_json, texts=len(train.texts) + len(held_out.texts),
           held_out=len(held_out.texts))


_BASELINE_NAMES = {"majority": "majority class", "tfidf": "TF-IDF + LR",
                   "minilm": "MiniLM-L6 (frozen) + LR"}


def _print(rows: list[Row], *, as_json: bool, texts: int, held_out: int) -> None:
    if as_json:
        console.print_json(json.dumps([row.__dict__ for row in rows]))
        return
    table = Table(title=f"{texts} texts, {held_out} held out (stratified)")
    for column in ("model", "accuracy", "macro-F1", "train s", "texts/s", "parameters",
                   "note"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.model, *(("-" if value is None else f"{value:,}" if
                                    isinstance(value, int) else str(value))
                                   for value in (row.accuracy, row.macro_f1,
                                                 row.train_seconds, row.texts_per_s,
                                                 row.parameters)), row.note)
    console.print(table)


def text_classify(
    texts: Annotated[list[str], typer.Argument(help="texts to classify")],
    model: Annotated[str | None, typer.Option(help="text model (default: the default)")
                     ] = None,
) -> None:
    """Print the topic of each text, its probability, and whether it is a confident answer."""
    with open_runtime(get_settings()) as runtime:
        answer = classify_texts(runtime, texts, model_name=model)
    console.print_json(json.dumps(answer))


def text_models() -> None:
    """Every text model: name, classes, held-out figures, default."""
    with open_runtime(get_settings()) as runtime, runtime.read_session() as session:
        for row in textmodels.list_text_models(session=session):
            mark = "*" if row.is_default else " "
            console.print(f"{mark} {row.name}  classes={','.join(row.classes)}  "
                          f"{json.dumps(row.figures)}", highlight=False)


POLL_S = 0.5


def text_apply(
    model: Annotated[str | None, typer.Option(help="text model (default: the default)")
                     ] = None,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="follow the job to its end (--no-wait: only submit it to "
        "the workers)")] = True,
) -> None:
    """Give every captioned image in the catalog its topic, as a job run page by page.

    A failed or cancelled job resumes its unfinished pages with `lookalike jobs retry ID`."""
    with open_runtime(get_settings()) as runtime:
        if not wait and not runtime.launcher.remote:
            raise InvalidRequest(
                "--no-wait needs workers (LOOKALIKE_BROKER_URL); without them the job runs in "
                "this command. Run it without --no-wait, or ask a running server: POST "
                '/v1/jobs {"kind": "text-apply"}')
        job = jobs.submit_text_apply(runtime, model_name=model, wait=wait)
        shown = jobs.describe(job)
        while wait and shown["state"] in ("queued", "running"):
            time.sleep(POLL_S)
            shown = jobs.describe(jobs.get_job(runtime, job.id))
    if not wait:
        console.print(f"job {shown['id']} submitted: {shown['progress']['total']} captioned "
                      f"images in {shown['batches']['total']} batches; `lookalike jobs show "
                      f"{shown['id']}` follows it", highlight=False)
        return
    console.print(f"job {shown['id']} {shown['state']}: {shown['counts']['added']} captioned "
                  "images have a topic", highlight=False)
    for line in shown["errors"][:20]:
        console.print(f"  {line}", highlight=False)
    if shown["state"] != "succeeded":
        raise typer.Exit(1)
