"""Labelled clip sets on disk: `lookalike sample clips` writes the synthetic tasks as mp4
files in one folder per class (<task>/<split>/<class>/<n>.mp4), and any such folder (user
clips too) reads back as uint8 arrays of T frames evenly spread over each clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from lookalike.retrieval.video.decode import VIDEO_SUFFIXES, VideoLimits, decode_frames
from lookalike.retrieval.video.synthetic import MOTIONS, TASKS, ClipSpec, make_clips
from lookalike.services.errors import InvalidRequest
from lookalike.services.sample import FASHION_MNIST_CLASSES, bundled_photos, fashion_mnist

SPLITS = {"train": 0, "test": 1}  # seed offsets; test items come from Fashion-MNIST's test
FPS = 8
DEFAULT_SPEC = ClipSpec()
READ_LIMITS = VideoLimits(max_bytes=200 * 1024 * 1024, max_seconds=600, max_pixels=4_000_000,
                          max_frames=20_000)


@dataclass(frozen=True)
class ClipSet:
    """Clips (N, T, S, S, 3) uint8, their labels, and the class names by label."""

    clips: np.ndarray
    labels: np.ndarray
    classes: list[str]


def write_sample_clips(directory: Path, *, seed: int, per_class: int,
                       spec: ClipSpec = DEFAULT_SPEC) -> int:
    """Write both tasks' train and test clips (classes drawn at random: `per_class` on
    average); the number of files written."""
    backgrounds = [np.asarray(photo.image) for photo in bundled_photos()]
    written = 0
    for split, offset in SPLITS.items():
        items, labels = fashion_mnist(split="train" if split == "train" else "test",
                                      limit=5000)
        for task in TASKS:
            names = MOTIONS if task == "motion" else FASHION_MNIST_CLASSES
            clips, classes = make_clips(items, labels, backgrounds, task=task,
                                        count=per_class * len(names), spec=spec,
                                        seed=seed * 10 + offset * 2 + TASKS.index(task))
            for index, (clip, label) in enumerate(zip(clips, classes, strict=True)):
                path = directory / task / split / names[label] / f"{index:05d}.mp4"
                write_mp4(path, clip)
                written += 1
    return written


def write_mp4(path: Path, clip: np.ndarray) -> None:
    """Encode (T, S, S, 3) uint8 frames as an MPEG-4 mp4 at high quality (quantiser 1-2),
    every frame a key frame, so the coding error is small and the same on every frame.
    ("qscale" is no option of the encoder: it was ignored and the default bit rate left an
    error growing along each 32 px clip, from 1-2.5 grey levels on the first frame to 3.5-6
    on the last, a change over time unrelated to the class that a 3-D convolution sees as
    readily as the motion.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("mpeg4", rate=FPS)
        stream.height, stream.width = clip.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.gop_size = 1
        stream.options = {"qmin": "1", "qmax": "2"}
        for frame in clip:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode(None))


def load_clip_folder(folder: Path, spec: ClipSpec = DEFAULT_SPEC,
                     classes: list[str] | None = None) -> ClipSet:
    """Every clip under folder/<class>/ as T frames of S x S pixels, labelled by folder
    (sorted names, or `classes` to keep the order of another split)."""
    names = classes or sorted(p.name for p in folder.iterdir() if p.is_dir())
    clips, labels = [], []
    for label, name in enumerate(names):
        for path in sorted((folder / name).glob("*")):
            if path.suffix.lower() in VIDEO_SUFFIXES:
                clips.append(clip_frames(path.read_bytes(), spec))
                labels.append(label)
    if not clips:
        raise InvalidRequest(f"no video clips in class folders under {folder}; write some "
                             "with `lookalike sample clips DIR`")
    return ClipSet(np.stack(clips), np.asarray(labels, dtype=np.int64), names)


def clip_frames(data: bytes, spec: ClipSpec, limits: VideoLimits = READ_LIMITS) -> np.ndarray:
    """T frames evenly spread over a clip's bytes, each squashed to S x S RGB (squashed as
    decoded, so a long clip costs S x S pixels a frame in memory)."""
    size = (spec.size, spec.size)
    frames = [np.asarray(f.image.convert("RGB").resize(size, Image.Resampling.BILINEAR))
              for f in decode_frames(data, limits=limits)]
    picks = np.linspace(0, len(frames) - 1, spec.frames).round().astype(int)
    return np.stack([frames[i] for i in picks])
