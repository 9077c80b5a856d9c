"""Keep BLAS to one thread inside the index's hot loops.

Rule: the index calls BLAS thousands of times on small blocks (a neighbour block, a batch's
candidate pairs). A multi-threaded BLAS wakes its threads for each of those calls, and on a
busy machine the threads spin while they wait for a core: the same build then costs several
times the CPU. So every public entry point of :class:`~refimpl.index.hnsw.HnswIndex` runs
under :func:`one_blas_thread`.

BLAS's thread count is one setting for the whole process (OpenBLAS's pthreads build), while
a peer runs several shards' calls at once in worker threads. Two rules follow:

* The limit is counted: the first thread to enter a :func:`one_blas_thread` block sets it,
  the last one to leave restores the original. (Each block setting and restoring on its own
  let one thread's exit give BLAS its threads back in the middle of another thread's block.)
* ``threadpoolctl`` lets only one thread, the first to set a limit, change such a
  process-wide pool; in any other thread a limit silently does nothing. In a peer that
  thread was whichever worker first ran an index call, and the workers live on, so most
  inserts and queries ran on every core's BLAS thread (issue 6). Under our lock, each change
  first hands control to the current thread and gives it back afterwards.
"""

import contextlib
import importlib
import importlib.util
import threading
from collections.abc import Iterator
from typing import Any


class _SharedLimit:
    """The count of threads inside a block and the limiter that restores the original
    setting, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.limiter: Any = None
        self.controller: Any = None
        self.looked = False
        """Whether :attr:`controller` was looked for (finding the BLAS libraries reads the
        process's memory map, far too slow to repeat on every call)."""

    def blas_controller(self) -> Any:
        """threadpoolctl's controller, or None without threadpoolctl."""
        if not self.looked:
            if importlib.util.find_spec("threadpoolctl") is not None:
                self.controller = importlib.import_module("threadpoolctl").ThreadpoolController()
            self.looked = True
        return self.controller

    def enter(self, controller: Any) -> None:
        with self.lock:
            if self.inside == 0:
                _release_control()
                self.limiter = controller.limit(limits=1, user_api="blas")
                _release_control()
            self.inside += 1

    def leave(self) -> None:
        with self.lock:
            self.inside -= 1
            if self.inside == 0:
                _release_control()
                self.limiter.restore_original_limits()
                _release_control()
                self.limiter = None


def _release_control() -> None:
    """Let the next thread that sets a limit take control of a process-wide OpenBLAS pool
    (threadpoolctl's ``OpenBLASController.clear_controlling_thread``, when it has one)."""
    module = importlib.import_module("threadpoolctl")
    clear = getattr(getattr(module, "OpenBLASController", None), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


_shared = _SharedLimit()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the ``with`` block with BLAS limited to one thread (if threadpoolctl is present),
    also while other threads enter and leave their own blocks."""
    controller = _shared.blas_controller()
    if controller is None:
        yield
        return
    _shared.enter(controller)
    try:
        yield
    finally:
        _shared.leave()
