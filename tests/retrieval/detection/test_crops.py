"""Naming objects from their true boxes: crops hold the boxed pixels, and the linear head
(standardisation folded into its weights) names held-out features of separable classes."""

from __future__ import annotations

import numpy as np
import torch

from lookalike.retrieval.detection.crops import box_crops, confusion, fit_linear_head
from lookalike.retrieval.detection.training import Sample


def test_crops_hold_the_boxed_object_at_the_asked_side() -> None:
    pixels = np.full((100, 100, 3), 128, dtype=np.uint8)
    pixels[10:30, 40:90] = (230, 40, 40)  # a red 50 x 20 object
    pixels[60:95, 5:25] = (40, 80, 230)  # a blue 20 x 35 object
    sample = Sample(pixels, np.array([[40, 10, 90, 30], [5, 60, 25, 95]], dtype=np.float32),
                    np.array([1, 2]))
    crops = box_crops([sample], side=32, margin=0.0)
    assert crops.pixels.shape == (2, 32, 32, 3)
    assert crops.labels.tolist() == [1, 2]
    assert (np.abs(crops.pixels[0, 2:-2, 2:-2].astype(int) - (230, 40, 40)) < 3).all()
    assert (np.abs(crops.pixels[1, 2:-2, 2:-2].astype(int) - (40, 80, 230)) < 3).all()
    grown = box_crops([sample], side=32, margin=0.25)  # the grey around it comes in
    assert (grown.pixels[0, 0, 0] == 128).all()


def test_the_linear_head_names_held_out_features_of_separable_classes() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, size=(3, 16)) * 4 + 50  # far from zero: standardising matters
    labels = rng.integers(1, 4, size=300)
    features = torch.tensor(centres[labels - 1] + rng.normal(0, 1, size=(300, 16)),
                            dtype=torch.float32)
    head = fit_linear_head(features[:200], labels[:200], 3)
    table = confusion(head, features[200:], labels[200:], 3)
    assert table.sum() == 100
    assert np.trace(table) >= 98, table
    assert table.sum(axis=1).tolist() == np.bincount(labels[200:] - 1, minlength=3).tolist()
