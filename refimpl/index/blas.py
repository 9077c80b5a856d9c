"""Keep BLAS to one thread inside the index's hot loops.

Rule: the index calls BLAS thousands of times on small blocks (a neighbour block, a batch's
candidate pairs). A multi-threaded BLAS wakes its threads for each of those calls, and on a
busy machine the threads spin while they wait for a core: the same build then costs several
times the CPU. So every public entry point of :class:`~refimpl.index.hnsw.HnswIndex` runs
under :func:`one_blas_thread`.

Theory of operation: ``threadpoolctl`` (when installed) finds the BLAS library numpy loaded
and sets its thread count for the duration of a ``with`` block, restoring it afterwards.
Without ``threadpoolctl`` the block does nothing and BLAS keeps its own setting (still
correct, only slower on a loaded machine).
"""

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator
from typing import Any

_controller: list[Any] = []
"""The threadpoolctl controller, made once: finding the BLAS libraries reads the process's
memory map, far too slow to repeat on every call."""


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the ``with`` block with BLAS limited to one thread (if threadpoolctl is present)."""
    if not _controller:
        if importlib.util.find_spec("threadpoolctl") is None:
            _controller.append(None)
        else:
            _controller.append(importlib.import_module("threadpoolctl").ThreadpoolController())
    controller = _controller[0]
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
