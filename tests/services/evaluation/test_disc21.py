"""`evaluate --benchmark disc21` on a small folder in the DISC21 layout, from bundled photos."""

from __future__ import annotations

from pathlib import Path

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.services.evaluation.disc21 import evaluate_disc21
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos


def write_disc21(root: Path) -> None:
    """6 reference photos; 4 queries copy one each (mild edits), 2 copy none."""
    photos = bundled_photos()
    for sub in ("queries", "references"):
        (root / sub).mkdir(parents=True)
    for row, photo in enumerate(photos[:6]):
        photo.image.save(root / "references" / f"R{row:06d}.jpg")
    lines = ["query_id,reference_id"]
    for row, (edit, ref) in enumerate([("jpeg", 0), ("colour_jitter", 2), ("overlay_text", 4),
                                       ("flip", 5)]):
        apply_edit(photos[ref].image, edit, row, strength=0.5).save(
            root / "queries" / f"Q{row:05d}.jpg")
        lines.append(f"Q{row:05d},R{ref:06d}")
    for row in (4, 5):
        photos[6 + row].image.save(root / "queries" / f"Q{row:05d}.jpg")
        lines.append(f"Q{row:05d},")
    (root / "ground_truth.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_disc21_scores_the_copies_and_ignores_distractor_queries(photo_home: Runtime,
                                                                 tmp_path: Path) -> None:
    write_disc21(tmp_path / "disc21")
    result = evaluate_disc21(photo_home, space_name=None, data=tmp_path / "disc21")
    assert (result.queries, result.gallery) == (6, 6)
    assert result.recall_at_1 == 1.0 and result.map == 1.0
    assert 0.5 < result.micro_ap <= 1.0
