"""Where an index keeps its arrays on disk: an explicit storage object, never pickle.

Rules: an index saves itself as a flat mapping of names to numpy arrays and loads itself from
the same mapping; it never opens a file itself (the core packages touch files only through a
storage object passed in). Arrays are written with ``numpy.save`` semantics and read back with
``allow_pickle=False``, so a saved index can never execute code when loaded.

Two stores: :class:`MemoryArrayStore` (tests, the simulator) and :class:`NpzArrayStore`
(one ``.npz`` file per saved index).
"""

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Arrays = dict[str, npt.NDArray[Any]]


class ArrayStore(Protocol):
    """Somewhere to put and get a named set of numpy arrays."""

    def write_arrays(self, arrays: Arrays) -> None:
        """Replace the stored arrays by ``arrays``."""
        ...

    def read_arrays(self) -> Arrays:
        """Return the arrays last written."""
        ...


class MemoryArrayStore:
    """Keeps copies of the arrays in memory (what a test or the simulator wants)."""

    def __init__(self) -> None:
        self._arrays: Arrays = {}

    def write_arrays(self, arrays: Arrays) -> None:
        """Keep copies, so later changes to the index do not leak into the saved state."""
        self._arrays = {name: np.array(value, copy=True) for name, value in arrays.items()}

    def read_arrays(self) -> Arrays:
        """Return copies of the stored arrays."""
        return {name: np.array(value, copy=True) for name, value in self._arrays.items()}


class NpzArrayStore:
    """One uncompressed ``.npz`` file; loading refuses pickled objects."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write_arrays(self, arrays: Arrays) -> None:
        """Write to a temporary name, then rename, so a crash never leaves half a file."""
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)
        partial.replace(self.path)

    def read_arrays(self) -> Arrays:
        """Read every array; ``allow_pickle=False`` rejects object arrays."""
        with np.load(self.path, allow_pickle=False) as loaded:
            return {name: loaded[name] for name in loaded.files}
