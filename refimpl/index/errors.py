"""Typed errors for bad input to a vector index.

Rule: input that comes from outside (a client's vector, a query, ``k``) is checked at the
index boundary and rejected with one of these errors, each carrying a message that says what
was wrong and what was expected. Internal invariants are assertions instead.

All of them derive from :class:`VectorIndexError`, itself a ``ValueError``, so a caller can
catch the whole family at once (the REST layer maps it to HTTP 400).
"""


class VectorIndexError(ValueError):
    """Base class: the caller gave the index something it cannot accept."""


class DimensionMismatchError(VectorIndexError):
    """A vector or query has a different number of components than the index."""


class NonFiniteVectorError(VectorIndexError):
    """A vector or query has a NaN or infinite component."""


class EmptyQueryError(VectorIndexError):
    """A query vector with no components, or a batch with no queries."""


class InvalidLimitError(VectorIndexError):
    """``k`` (Qdrant's ``limit``) or ``ef`` is zero or negative."""


class UnknownPointError(VectorIndexError, KeyError):
    """A point id that the index does not hold."""

    def __str__(self) -> str:
        # KeyError would print the repr of its argument; we want the plain message.
        return str(self.args[0]) if self.args else ""
