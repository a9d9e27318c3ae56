"""Detection, localization and region heads: scenes, COCO files, networks, training."""
