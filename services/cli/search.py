"""`lookalike search`: the catalogued images most like a file, an image URL or a catalogued
id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.config import get_settings
from lookalike.services.search.filters import Filters
from lookalike.services.search.query import search_text, search_vector
from lookalike.services.setup import open_runtime

console = Console()


def search(
    image: Annotated[Path | None, typer.Argument(help="query image file", exists=True,
                                                 dir_okay=False)] = None,
    image_id: Annotated[int | None, typer.Option("--id", help="query by catalogued id")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="query by http(s) image URL (public hosts, or LOOKALIKE_FETCH_ALLOW)")
                   ] = None,
    k: Annotated[int, typer.Option("-k", help="number of results")] = 10,
    space: Annotated[str | None, typer.Option(help="embedding space (default: default)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON answer")] = False,
    qe: Annotated[bool | None, typer.Option("--qe/--no-qe",
                                            help="α-query expansion (default: the space's)")
                  ] = None,
    dba: Annotated[bool | None, typer.Option(
        "--dba/--no-dba", help="database-side augmentation (default: the space's)")] = None,
    text: Annotated[str | None, typer.Option(
        help="words every result's caption holds; alone: ranked text search")] = None,
    topic: Annotated[str | None, typer.Option(help="only images of this topic")] = None,
    collection: Annotated[str | None, typer.Option(help="only this collection")] = None,
    label: Annotated[str | None, typer.Option(help="only this label")] = None,
    verify: Annotated[bool | None, typer.Option(
        "--verify/--no-verify", help="re-rank the top candidates by local-feature inliers "
        "(default: the space's)")] = None,
    refine_moment: Annotated[bool | None, typer.Option(
        "--refine-moment/--no-refine-moment", help="re-rank the best clip's frames by "
        "registering the still onto them (default: LOOKALIKE_MOMENT_REFINE, on)")] = None,
    box: Annotated[str | None, typer.Option(
        help="x0,y0,x1,y1 in the query image's pixels: search with that region of it")] = None,
    scope: Annotated[str, typer.Option(
        help="images (whole images) or regions (stored regions, grouped under their image, "
             "best first)")] = "images",
) -> None:
    """Print the k catalogued images most like IMAGE (or --id N, or --url URL), best first."""
    given = 3 - [image, image_id, url].count(None)
    if given > 1 or (given == 0 and text is None):
        raise typer.BadParameter("give one of an IMAGE file, --id N and --url URL, or --text")
    filters = Filters(topic=topic, collection=collection, label=label, text=text)
    with open_runtime(get_settings()) as runtime:
        query = image.read_bytes() if image is not None else None
        if given == 0:
            result = search_text(runtime, k=k, filters=filters)
        else:
            result = search_vector(runtime, space_name=space, k=k, query=query,
                                   image_id=image_id, url=url, qe=qe, dba=dba, filters=filters,
                                   verify=verify, box=box, scope=scope,
                                   refine_moment=refine_moment)
    if as_json:
        console.print_json(json.dumps(result.to_public()))
        return
    table = Table("rank", "id", "score", "inliers", "copy", "label", "caption", "source",
                  *(["regions (box label)"] if scope == "regions" else []),
                  title=f"space {result.space}, {result.took_ms:.1f} ms")
    for rank, hit in enumerate(result.results, start=1):
        boxes = ["; ".join(f"{','.join(f'{v:g}' for v in r.box)} {r.label or ''}".strip()
                           for r in hit.regions)] if scope == "regions" else []
        table.add_row(str(rank), str(hit.image_id), f"{hit.score:.4f}",
                      "" if hit.inliers is None else str(hit.inliers),
                      "" if hit.is_copy is None else ("yes" if hit.is_copy else "no"),
                      hit.label or "", (hit.caption or "")[:60], hit.source, *boxes)
    console.print(table)


