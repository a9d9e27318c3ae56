"""`lookalike visualize augmentations` writes the grid of copy-detection views."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image


def test_grid_png_has_a_row_per_photo(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = subprocess.run([sys.executable, "-m", "lookalike.services.cli", "visualize",
                             "augmentations", str(out), "--photos", "2", "--views", "3",
                             "--edit", "heavy_crop:1:1", "--edit", "jpeg:0.5:0.8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as grid:
        assert grid.format == "PNG" and grid.width > 1.5 * grid.height > 0  # 4 columns, 2 rows
