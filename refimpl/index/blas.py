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


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the ``with`` block with BLAS limited to one thread (if threadpoolctl is present)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        yield
        return
    limits = importlib.import_module("threadpoolctl").threadpool_limits
    with limits(limits=1, user_api="blas"):
        yield
