"""The vector index of a shard: HNSW in numpy, its exact twin, distances, persistence.

Sans-IO core: no clock, no sockets, no files except through an :class:`ArrayStore` passed in;
randomness only from a seeded ``random.Random``. Modules:

* :mod:`.distance` — Qdrant's four distances and their vectorised kernels;
* :mod:`.errors` — typed errors for bad input;
* :mod:`.store` — rows of vectors keyed by point id, with deleted marks;
* :mod:`.protocol` — the ``VectorIndex`` protocol and ``ScoredPoint``;
* :mod:`.exact` — the brute-force oracle with a block-maximum top-k;
* :mod:`.graph` — HNSW's neighbour-selection heuristic and layered search (and lockstep twins);
* :mod:`.hnsw` — the HNSW index;
* :mod:`.persist` — array stores (memory, ``.npz``).
"""

from refimpl.index.distance import Distance
from refimpl.index.errors import (
    DimensionMismatchError,
    EmptyQueryError,
    InvalidLimitError,
    NonFiniteVectorError,
    UnknownPointError,
    VectorIndexError,
)
from refimpl.index.exact import ExactIndex
from refimpl.index.graph import (
    search_layer_lockstep,
    search_layers,
    select_neighbours_heuristic,
    select_neighbours_lockstep,
)
from refimpl.index.hnsw import HnswConfig, HnswIndex
from refimpl.index.persist import ArrayStore, MemoryArrayStore, NpzArrayStore
from refimpl.index.protocol import ScoredPoint, VectorIndex

__all__ = [
    "ArrayStore",
    "DimensionMismatchError",
    "Distance",
    "EmptyQueryError",
    "ExactIndex",
    "HnswConfig",
    "HnswIndex",
    "InvalidLimitError",
    "MemoryArrayStore",
    "NonFiniteVectorError",
    "NpzArrayStore",
    "ScoredPoint",
    "UnknownPointError",
    "VectorIndex",
    "VectorIndexError",
    "search_layer_lockstep",
    "search_layers",
    "select_neighbours_heuristic",
    "select_neighbours_lockstep",
]
