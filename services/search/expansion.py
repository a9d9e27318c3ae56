"""α-query expansion at search time, switched per space (its options) and per query."""

from __future__ import annotations

import numpy as np

from lookalike.retrieval.embedding.expansion import alpha_query_expansion
from lookalike.services.catalog.models import Space
from lookalike.services.index.backend import SpaceIndex


def qe_enabled(space: Space, qe: bool | None) -> bool:
    """The query's choice when it makes one, else the space's default."""
    return space.options.qe if qe is None else qe


def expand_query(replica: SpaceIndex, space: Space, vector: np.ndarray) -> np.ndarray:
    """(1, D) query replaced by itself plus its top-n neighbours weighted by score**alpha."""
    hits = replica.search(vector, space.options.qe_n)
    found = hits.ids[0] >= 0
    ids, neighbours = replica.vectors(hits.ids[0][found])
    if not len(ids):
        return vector
    # A neighbour removed by catch-up since the search is left out, with its score.
    scores = hits.scores[0][found][np.isin(hits.ids[0][found], ids)]
    return alpha_query_expansion(vector, neighbours[None], scores[None],
                                 alpha=space.options.qe_alpha)
