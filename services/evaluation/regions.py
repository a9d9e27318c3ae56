"""The `regions` benchmark: does a lone object find the scene that holds it, with its box?

Held-out scenes (the `sample scenes` generator on its held-out glyphs and backgrounds, with
the benchmark's own seed) are ingested into a temporary catalog as the gallery; their
regions come from the COCO file's true boxes (`truth`: measures the region index itself) or
from a detector run at ingest (a trained one, or `faces`). Each query is one pasted object
rendered alone: its visible pixels (the mask less the objects pasted over it) on a plain
background of a random colour, with the margin regions are cut with; it is in the gallery
only inside its scene. A region search (`scope=regions`) scores when its first result is the
scene and that result's best region overlaps the true box with IoU >= 0.5; a whole-image
search on the same queries scores when its first result is the scene.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.retrieval.detection.coco import read_coco, scenes_to_coco
from lookalike.retrieval.detection.scenes import (
    Scene,
    SceneSpec,
    box_iou,
    generate_scenes,
    visible_shares,
)
from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.regions import add_regions, image_regions
from lookalike.services.catalog.schemas import RegionCreate
from lookalike.services.config import Settings
from lookalike.services.detection.embedding import (
    AUTO_LAYER,
    REGION_CENTRE,
    embed_regions,
    ensure_region_space,
)
from lookalike.services.detection.running import detect_images
from lookalike.services.detection.scenes import scene_backgrounds, scene_glyphs
from lookalike.services.detection.store import detector_path
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.pipeline import ingest_items
from lookalike.services.ingest.sources import collect_items
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lookup import find_space

TRUTH = "truth"
IOU_HIT = 0.5
IN_VIEW = 0.5  # a queried object with less of its pixels in view is mostly hidden in its scene
MARGIN = SpaceOptions().region_margin  # a query is framed as stored regions are cut


@dataclass
class RegionsResult:
    """The benchmark's figures: recall@1 of region search (scene and box) and of whole-image
    search (scene) on the same lone-object queries, and the share of queried objects that
    some stored region of their scene boxes with IoU >= 0.5 (`box_stored`: the most region
    search can reach with these regions, so a detector's misses and the description's
    are told apart)."""

    regions_source: str
    scenes: int
    objects: int
    regions_stored: int
    queries: int
    seed: int
    scene_size: int
    margin: float
    method: str = "crop"
    threshold: float | None = None
    centre: float | None = None
    layer: int | None = None
    rerank: int = 0
    shift: int = 0
    region_recall_at_1: float = 0.0
    region_scene_at_1: float = 0.0
    box_stored: float = 0.0
    image_recall_at_1: float = 0.0
    ingest_seconds: float = 0.0
    query_seconds: float = 0.0
    per_query: list[dict[str, Any]] = field(default_factory=list)

    def misses_by_class(self) -> dict[str, int]:
        """Region-search misses per class of the queried object, most first."""
        missed = Counter(q["class"] for q in self.per_query if not q["region_hit"])
        return dict(missed.most_common())

    def misses_without_box(self) -> int:
        """Region-search misses whose object no stored region boxes (IoU >= 0.5)."""
        return sum(1 for q in self.per_query if not q["region_hit"] and not q["box_stored"])

    def mostly_hidden(self) -> tuple[int, int]:
        """How many queried objects have less than IN_VIEW of their pixels in view in their
        scene (the query shows only those, framed by the whole object's box), and how many
        of them region search found: a box that fits what is in view may miss the whole
        object's box, so these are the queries a detector can least be asked to find."""
        hidden = [q for q in self.per_query if q["visible"] < IN_VIEW]
        return len(hidden), sum(1 for q in hidden if q["region_hit"])

    def recall_in_view(self) -> float:
        """Region recall@1 over the queries whose object is at least IN_VIEW in view."""
        shown = [q for q in self.per_query if q["visible"] >= IN_VIEW]
        return round(sum(q["region_hit"] for q in shown) / len(shown), 4) if shown else 0.0

    def to_public(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("per_query")
        hidden, found = self.mostly_hidden()
        return {**values, "misses_by_class": self.misses_by_class(),
                "misses_without_box": self.misses_without_box(),
                "mostly_hidden_queries": hidden, "mostly_hidden_found": found,
                "region_recall_at_1_in_view": self.recall_in_view()}


def run_regions(settings: Settings, *, regions: str = TRUTH, scenes: int = 100,
                queries: int = 200, seed: int = 7, size: int = 320,
                max_objects: int = 4, margin: float = MARGIN, method: str = "crop",
                centre: float | None = REGION_CENTRE,
                layer: int | str | None = AUTO_LAYER,
                rerank: int | None = None, shift: int | None = None,
                threshold: float | None = None) -> RegionsResult:
    """Generate the scenes, ingest them with their regions into a temporary catalog and run
    the lone-object queries against it, both scopes. Objects span 3/40 to 1/2 of the scene's
    side (24-160 px in the default 320-px scenes); `method`, `centre` and `layer` set how
    the region space describes regions (SpaceOptions.region_method, region_centre: None is
    uniform, region_layer: a block index, None for the last map alone, "auto";
    region_rerank, region_shift: None leaves the region space's default); `threshold` stores a
    detector's boxes scored at least that instead of at the detector's own threshold."""
    if threshold is not None and regions == TRUTH:
        raise InvalidRequest("a storing threshold applies to a detector's boxes; the true "
                             "boxes have no score: drop --region-threshold or name a detector")
    spec = SceneSpec(size=size, min_object=max(8, size * 3 // 40), max_object=size // 2,
                     max_objects=max_objects)
    glyphs = scene_glyphs("held-out")
    made = generate_scenes(glyphs, scene_backgrounds("held-out"), count=scenes, seed=seed,
                           spec=spec)
    objects = [(s, o) for s, scene in enumerate(made) for o in range(len(scene.objects))]
    if len(objects) < queries:
        raise InvalidRequest(f"{scenes} scenes hold {len(objects)} objects, fewer than the "
                             f"{queries} queries asked for: generate more scenes")
    rng = np.random.default_rng(seed)
    chosen = [objects[i] for i in sorted(rng.choice(len(objects), queries, replace=False))]
    with tempfile.TemporaryDirectory(prefix="lookalike-regions-") as home:
        local = settings.model_copy(update={"home": Path(home).resolve(), "database_url": None})
        init_catalog(local)
        if regions not in (TRUTH, "faces"):
            source = detector_path(settings.layout, regions)
            if not source.is_file():
                raise InvalidRequest(f"no detector '{regions}' in {settings.layout.detectors}; "
                                     "use --regions truth or train one (lookalike detect train)")
            local.layout.detectors.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, detector_path(local.layout, regions))
        folder = Path(home) / "scenes"
        names = _write_scenes(folder, made, glyphs.classes)
        with open_runtime(local) as runtime:
            started = time.perf_counter()
            ids = _ingest(runtime, folder, names)
            with runtime.session() as session:
                made_space = ensure_region_space(
                    session, find_space(session=session, name=None), margin=margin,
                    description={"region_method": method, "region_centre": centre,
                                 "region_layer": layer,
                                 **({} if rerank is None else {"region_rerank": rerank}),
                                 **({} if shift is None else {"region_shift": shift})})
                tapped = made_space.options.region_layer
                reranked = made_space.options.region_rerank
                shifted = made_space.options.region_shift
                session.commit()
            stored = _store_regions(runtime, folder, ids, regions, threshold)
            result = RegionsResult(regions_source=regions, scenes=scenes, objects=len(objects),
                                   regions_stored=stored, threshold=threshold,
                                   queries=queries, seed=seed,
                                   scene_size=size, margin=margin, method=method,
                                   centre=centre, layer=tapped, rerank=reranked, shift=shifted,
                                   ingest_seconds=round(time.perf_counter() - started, 1))
            started = time.perf_counter()
            _run_queries(runtime, result, made, chosen, [ids[n] for n in names], rng, margin,
                         glyphs.classes)
            result.query_seconds = round(time.perf_counter() - started, 1)
    return result


def lone_object(scene: Scene, index: int, rng: np.random.Generator,
                margin: float = MARGIN) -> bytes:
    """PNG of one pasted object alone: its visible pixels on a plain background of a random
    colour, framed by the box plus the region margin."""
    item = scene.objects[index]
    visible = item.mask.copy()
    for later in scene.objects[index + 1:]:
        visible &= ~later.mask
    x0, y0, x1, y1 = item.box
    dx, dy = round((x1 - x0) * margin), round((y1 - y0) * margin)
    width, height = x1 - x0 + 2 * dx, y1 - y0 + 2 * dy
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    patch = visible[y0:y1, x0:x1]
    canvas[dy:dy + y1 - y0, dx:dx + x1 - x0][patch] = scene.image[y0:y1, x0:x1][patch]
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_scenes(folder: Path, made: list[Scene], classes: tuple[str, ...]) -> list[str]:
    names = [f"images/scene-{i:05d}.png" for i in range(len(made))]
    (folder / "images").mkdir(parents=True)
    for scene, name in zip(made, names, strict=True):
        Image.fromarray(scene.image).save(folder / name)
    document = scenes_to_coco(made, names, classes)
    (folder / "annotations.json").write_text(json.dumps(document))
    return names


def _ingest(runtime: Runtime, folder: Path, names: list[str]) -> dict[str, int]:
    """The scenes into the catalog; each file name's image id."""
    summary = ingest_items(runtime, collect_items([folder / "images"]))
    by_source = {Path(o.source).name: o.image_id for o in summary.outcomes
                 if o.image_id is not None}
    missing = [n for n in names if Path(n).name not in by_source]
    if missing:
        raise RuntimeError(f"scenes not ingested: {missing[:5]}")
    return {n: int(by_source[Path(n).name] or 0) for n in names}


def _store_regions(runtime: Runtime, folder: Path, ids: dict[str, int], regions: str,
                   threshold: float | None) -> int:
    """The COCO file's true boxes (`truth`) or a detector's (scored at least `threshold`,
    None: the detector's own), stored and embedded."""
    if regions != TRUTH:
        stored, _, errors = detect_images(runtime, sorted(ids.values()), name=regions,
                                          threshold=threshold)
        if errors:
            raise RuntimeError(f"detection failed: {errors[:3]}")
        return stored
    coco = read_coco(folder / "annotations.json")
    stored = 0
    with runtime.session() as session:
        for image in coco.images:
            boxes = [RegionCreate(x0=b[0], y0=b[1], x1=b[2], y1=b[3],
                                  label=coco.classes[label - 1], detector=TRUTH)
                     for b, label in zip(image.boxes, image.labels, strict=True)]
            stored += len(add_regions(session=session, image_id=ids[image.file_name],
                                      regions=boxes))
        session.commit()
    embed_regions(runtime, image_ids=sorted(ids.values()))
    return stored


def _run_queries(runtime: Runtime, result: RegionsResult, made: list[Scene],
                 chosen: list[tuple[int, int]], scene_ids: list[int],
                 rng: np.random.Generator, margin: float, classes: tuple[str, ...]) -> None:
    region_hits = scene_hits = image_hits = stored_hits = 0
    stored_boxes = _stored_boxes(runtime, scene_ids)
    shares = [visible_shares(scene) for scene in made]
    for scene_index, object_index in chosen:
        query = lone_object(made[scene_index], object_index, rng, margin)
        want = scene_ids[scene_index]
        x0, y0, x1, y1 = (float(v) for v in made[scene_index].objects[object_index].box)
        truth = (x0, y0, x1, y1)
        box_stored = max((box_iou(truth, box) for box in stored_boxes[want]),
                         default=0.0) >= IOU_HIT
        by_region = search_vector(runtime, space_name=None, k=1, query=query, scope="regions")
        by_image = search_vector(runtime, space_name=None, k=1, query=query)
        top = by_region.results[0] if by_region.results else None
        iou = (box_iou(truth, top.regions[0].box)
               if top is not None and top.image_id == want and top.regions else 0.0)
        scene_hit = top is not None and top.image_id == want
        image_hit = bool(by_image.results) and by_image.results[0].image_id == want
        region_hits += iou >= IOU_HIT
        scene_hits += scene_hit
        image_hits += image_hit
        stored_hits += box_stored
        result.per_query.append({"scene": want, "object": object_index,
                                 "class": classes[made[scene_index].objects[object_index].label],
                                 "visible": shares[scene_index][object_index],
                                 "iou": round(iou, 3), "region_hit": iou >= IOU_HIT,
                                 "image_hit": image_hit, "box_stored": box_stored})
    result.region_recall_at_1 = round(region_hits / len(chosen), 4)
    result.box_stored = round(stored_hits / len(chosen), 4)
    result.region_scene_at_1 = round(scene_hits / len(chosen), 4)
    result.image_recall_at_1 = round(image_hits / len(chosen), 4)


def _stored_boxes(runtime: Runtime, image_ids: list[int]
                  ) -> dict[int, list[tuple[float, float, float, float]]]:
    """Each scene's stored region boxes, read once before the queries."""
    with runtime.read_session() as session:
        return {i: [(r.x0, r.y0, r.x1, r.y1) for r in image_regions(session=session, image_id=i)]
                for i in image_ids}
