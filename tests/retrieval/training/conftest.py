"""Real training data for the training tests: Fashion-MNIST images as LeNet-5 input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lookalike.services.evaluation.benchmarks import fashion_pixels
from lookalike.services.sample import fashion_mnist


class FashionItems(TensorDataset):
    """(3,32,32) uint8 Fashion-MNIST images with int64 labels, and the labels as a list."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        super().__init__(fashion_pixels(images, 32), torch.from_numpy(labels))
        self.labels = labels.tolist()


@pytest.fixture(scope="session")
def fashion_train() -> tuple[np.ndarray, np.ndarray]:
    """The first 2,000 Fashion-MNIST training images and labels."""
    return fashion_mnist(split="train", limit=2000)


@pytest.fixture(scope="session")
def small_train(fashion_train: tuple[np.ndarray, np.ndarray]) -> FashionItems:
    """240 real training images (about 24 per class)."""
    images, labels = fashion_train
    return FashionItems(images[:240], labels[:240])
