"""The copy question: is this image (bytes or a catalogued id) a copy of catalogued ones?

Answered from a verified search of the space: the results the space's calibrated thresholds
call copies (services/evaluation/calibration.py fits them), best first; a catalogued query
is never its own copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.errors import NotCalibrated
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import Hit, search_vector
from lookalike.services.spaces.lookup import find_space


@dataclass(frozen=True)
class CopyAnswer:
    space: str
    took_ms: float
    copies: list[Hit]
    calibration: CopyCalibration

    @property
    def answer(self) -> str:
        """'copy of image 42 (and 7)' or 'no copy'."""
        if not self.copies:
            return "no copy"
        first, *others = (hit.image_id for hit in self.copies)
        more = f" (and {', '.join(str(i) for i in others)})" if others else ""
        return f"copy of image {first}{more}"

    def to_public(self) -> dict:
        """The JSON answer of POST /v1/copies."""
        return {
            "space": self.space, "took_ms": round(self.took_ms, 3),
            "is_copy": bool(self.copies), "answer": self.answer,
            "thresholds": self._thresholds(),
            "copies": [{"image_id": hit.image_id, "score": round(hit.score, 6),
                        "inliers": hit.inliers, "source": hit.source,
                        "thumbnail_url": f"/v1/images/{hit.image_id}/thumbnail"}
                       for hit in self.copies],
        }

    def _thresholds(self) -> dict[str, float]:
        """The thresholds the decision uses: inliers, and the top result's margin over the
        score of result `margin_rank` or (a calibration older than margins) the score."""
        c = self.calibration
        shown: dict[str, float] = {"inliers": c.inlier_threshold,
                                   "target_precision": c.target_precision}
        if c.margin_threshold is None or c.margin_rank is None:
            return shown | {"score": c.score_threshold}
        return shown | {"margin": c.margin_threshold, "margin_rank": c.margin_rank}


def calibration_of(runtime: Runtime, space_name: str | None) -> tuple[str, CopyCalibration]:
    """The space's name and copy calibration, or NotCalibrated saying how to fit one."""
    with runtime.read_session() as session:
        space = find_space(session=session, name=space_name)
        name, calibration = space.name, space.options.copy_calibration
    if calibration is None:
        raise NotCalibrated(f"space '{name}' has no copy thresholds yet; fit them with "
                            f"`lookalike evaluate --benchmark copies --calibrate --space {name}`")
    return name, calibration


def find_copies(runtime: Runtime, *, space_name: str | None, query: bytes | None = None,
                image_id: int | None = None, k: int = 10) -> CopyAnswer:
    """The catalogued copies of the query among its top candidates, verified, best first."""
    started = time.perf_counter()
    name, calibration = calibration_of(runtime, space_name)
    result = search_vector(runtime, space_name=name, k=k + int(image_id is not None),
                           query=query, image_id=image_id, verify=True)
    copies = [hit for hit in result.results if hit.is_copy and hit.image_id != image_id][:k]
    return CopyAnswer(space=name, took_ms=(time.perf_counter() - started) * 1000,
                      copies=copies, calibration=calibration)
