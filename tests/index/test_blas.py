"""one_blas_thread: BLAS stays on one thread while any thread is inside a block."""

import threading

import pytest

from refimpl.index.blas import one_blas_thread

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads() -> object:
    if not blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas") as limits:
        yield limits


def test_a_block_limits_blas_and_restores_it(two_blas_threads: object) -> None:
    with one_blas_thread():
        assert blas_threads() == [1] * len(blas_threads())
        with one_blas_thread():  # nested in the same thread
            assert blas_threads() == [1] * len(blas_threads())
        assert blas_threads() == [1] * len(blas_threads())
    assert blas_threads() == [2] * len(blas_threads())


def test_overlapping_blocks_in_two_threads_keep_one_thread_until_the_last_leaves(
    two_blas_threads: object,
) -> None:
    """Issue 6: a peer applies several shards at once in worker threads that live on.
    Thread A enters, B enters, A leaves: B must still run on one BLAS thread (A's exit used
    to restore two under B's feet). Then a third thread C, while A is still alive, must get
    one thread too (threadpoolctl let A alone change the setting, so C's limit did nothing)."""
    a_entered, b_entered, a_left, b_done, c_done = (threading.Event() for _ in range(5))
    seen: dict[str, list[int]] = {}

    def thread_a() -> None:
        with one_blas_thread():
            a_entered.set()
            b_entered.wait(5)
        a_left.set()
        c_done.wait(5)  # alive, like a worker thread waiting for its next job

    def thread_b() -> None:
        a_entered.wait(5)
        with one_blas_thread():
            b_entered.set()
            a_left.wait(5)
            seen["b"] = blas_threads()
        b_done.set()

    def thread_c() -> None:
        b_done.wait(5)
        with one_blas_thread():
            seen["c"] = blas_threads()
        seen["c after"] = blas_threads()
        c_done.set()

    threads = [threading.Thread(target=f) for f in (thread_a, thread_b, thread_c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    one, two = [1] * len(blas_threads()), [2] * len(blas_threads())
    assert seen == {"b": one, "c": one, "c after": two}
    assert blas_threads() == two
