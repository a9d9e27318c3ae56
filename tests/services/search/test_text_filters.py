"""Searches restricted by topic, collection, label and caption words: k results come back
when k match, never one outside the filter, with facet counts; text alone is ranked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.services.catalog.models import Image
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime
from lookalike.services.search.filters import Filters
from lookalike.services.search.query import search_text, search_vector
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings, synthetic_space

TOPICS = ("sport", "tech", "politics")


@pytest.fixture()
def captioned(tmp_path: Path) -> Iterator[tuple[Runtime, list[int]]]:
    """40 synthetic images: topics in turn, two collections, captions naming the topic."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    synthetic_space(runtime, "syn", count=40)
    with runtime.session() as session:
        rows = session.query(Image).order_by(Image.id).all()
        for number, image in enumerate(rows):
            image.topic = TOPICS[number % 3]
            image.collection = "even" if number % 2 == 0 else "odd"
            image.caption = f"a photo about {image.topic} number {number}"
        session.commit()
        ids = [row.id for row in rows]
    yield runtime, ids
    runtime.close()


def _topics(runtime: Runtime, ids: list[int]) -> dict[int, str | None]:
    with runtime.read_session() as session:
        return {i: session.get(Image, i).topic for i in ids}  # type: ignore[union-attr]


def test_filtered_search_returns_k_inside_the_filter(captioned) -> None:
    runtime, ids = captioned
    filters = Filters(topic="tech", collection="odd")
    result = search_vector(runtime, space_name="syn", k=5, image_id=ids[0], filters=filters)
    found = [hit.image_id for hit in result.results]
    assert len(found) == 5
    assert all(hit.topic == "tech" and hit.collection == "odd" for hit in result.results)
    matching = {i for n, i in enumerate(ids) if n % 3 == 1 and n % 2 == 1}
    assert set(found) <= matching
    everything = search_vector(runtime, space_name="syn", k=40, image_id=ids[0])
    best = [h.image_id for h in everything.results if h.image_id in matching][:5]
    assert found == best  # the same order as unfiltered search, restricted
    # All 7 that match come back when more are asked for.
    many = search_vector(runtime, space_name="syn", k=20, image_id=ids[0], filters=filters)
    assert {h.image_id for h in many.results} == matching
    topics = {f["value"]: f["count"] for f in many.facets["topics"]}  # type: ignore[index]
    assert topics == {"sport": 7, "tech": 7, "politics": 6}  # the topic filter left out


def test_an_unfiltered_search_counts_facets_only_when_asked(captioned) -> None:
    runtime, ids = captioned
    plain = search_vector(runtime, space_name="syn", k=3, image_id=ids[0])
    assert plain.facets is None  # no scan of the whole catalog on the hot path
    asked = search_vector(runtime, space_name="syn", k=3, image_id=ids[0], facets=True)
    assert asked.facets is not None
    assert sum(f["count"] for f in asked.facets["topics"]) == len(ids)


def test_text_alone_and_text_with_an_image(captioned) -> None:
    runtime, ids = captioned
    result = search_text(runtime, k=50, filters=Filters(text="sport photo"))
    assert sorted(h.image_id for h in result.results) == ids[0::3]
    assert result.mode == "text"
    assert all(h.caption and "sport" in h.caption for h in result.results)
    restricted = search_vector(runtime, space_name="syn", k=3, image_id=ids[1],
                               filters=Filters(text="politics"))
    assert len(restricted.results) == 3
    assert set(_topics(runtime, [h.image_id for h in restricted.results]).values()) == {
        "politics"}


@pytest.mark.parametrize("filters", [Filters(topic="cooking"), Filters(text="   "),
                                     Filters(text="x" * 1_000_001)])
def test_bad_filters_are_refused(captioned, filters: Filters) -> None:
    runtime, ids = captioned
    with pytest.raises(InvalidRequest):
        search_vector(runtime, space_name="syn", k=3, image_id=ids[0], filters=filters)
