"""A small seeded corpus, one folder per topic, that a text-CNN learns in seconds."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = {
    "animals": "dog cat horse lion tiger rabbit sheep goat bird fox wolf bear",
    "vehicles": "car truck bus train bicycle tram lorry van scooter engine wheel road",
    "weather": "rain snow storm wind cloud sunshine fog thunder frost hail drizzle sky",
}
COMMON = ["the", "a", "of", "and", "with", "in", "on", "at", "near"]


def sentence(topic: str, rng: random.Random, words: int = 10) -> str:
    return " ".join(rng.choice(WORDS[topic].split() if i % 2 else COMMON) for i in range(words))


def write_corpus(root: Path, *, per_topic: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    for topic in WORDS:
        (root / topic).mkdir(parents=True, exist_ok=True)
        for number in range(per_topic):
            (root / topic / f"{number:03d}.txt").write_text(sentence(topic, rng))
    return root
