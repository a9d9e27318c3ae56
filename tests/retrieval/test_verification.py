"""Local-feature verification on real photos: copies keep many inliers, other photos few."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.retrieval.verification import (
    extract_features,
    query_views,
    verify_pair,
    verify_views,
)


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    """Four textured photos from scikit-image."""
    return {name: Image.fromarray(getattr(skdata, name)()).convert("RGB")
            for name in ("astronaut", "chelsea", "coffee", "rocket")}


@pytest.mark.parametrize("edit", ["heavy_crop", "perspective", "paste_into_frame", "rotate",
                                  "jpeg", "channel_swap"])
def test_a_copy_keeps_many_inliers_and_other_photos_few(edit: str,
                                                       photos: dict[str, Image.Image]) -> None:
    query = apply_edit(photos["astronaut"], edit, 4, strength=0.8)
    views = query_views(query)
    found = {name: verify_views(views, extract_features(image)).inliers
             for name, image in photos.items()}
    assert found["astronaut"] >= 40, found
    assert max(v for name, v in found.items() if name != "astronaut") <= 10, found


def test_a_flipped_copy_is_found_through_the_mirrored_query(photos: dict[str, Image.Image]
                                                            ) -> None:
    flipped = ImageOps.mirror(photos["chelsea"])
    plain = verify_pair(flipped, photos["chelsea"], mirrored=False)
    both = verify_pair(flipped, photos["chelsea"])
    assert both.mirrored and both.inliers >= 100 and plain.inliers * 10 < both.inliers


def test_inlier_pairs_follow_the_geometry(photos: dict[str, Image.Image]) -> None:
    image = photos["coffee"]
    crop = image.crop((100, 50, 400, 300))
    found = verify_pair(crop, image, mirrored=False)
    assert found.pairs.shape == (found.inliers, 4)
    shift = found.pairs[:, 2:] - found.pairs[:, :2]
    np.testing.assert_allclose(np.median(shift, axis=0), [100, 50], atol=2)


def test_an_image_without_texture_has_no_features() -> None:
    flat = Image.new("RGB", (200, 100), (120, 30, 30))
    assert len(extract_features(flat)) == 0
    assert verify_pair(flat, flat).inliers == 0
