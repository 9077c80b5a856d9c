"""Benchmark of the vector index against hnswlib, datasketch and numpy brute force.

Run ``python bench/bench_index.py`` (full sizes, a few minutes) or ``--quick`` (seconds, the
smoke test). Everything is measured in the same run on the same generated data, in one
thread (BLAS is pinned to one thread unless the environment already says otherwise), as CPU
time of this process:

* data: 100 000 base and 1 000 query vectors of 128 dimensions drawn from a mixture of 100
  Gaussian clusters with unequal spreads (cosine), and 20 000 x 96 iid Gaussian vectors
  (hard for graphs: no structure to exploit); float32, fixed seeds;
* figures: build time and rate, recall@10 against exact ground truth (of the batched answers,
  and of the one-at-a-time answers as ``recall 1``), queries per second one query at a time
  and batched, for ef in {16, 32, 64, 128, 256}; then the ratios to hnswlib
  and to numpy brute force (one matmul + argpartition). Every query timing is the median of
  ``--repeat`` passes (3), so one pass slowed by other load on the machine does not decide a
  ratio; a build is timed once.

hnswlib and datasketch are optional (the ``bench`` extra); each is skipped with a message
when it is not installed. datasketch indexes the same points as the others by default, so its
query rate is measured on a graph of the same size (about 8 minutes of pure-Python build at
100 000 points on this kind of machine); ``--datasketch-n`` indexes only the first N points for
a quicker look, but a smaller graph answers faster, so its query ratio then flatters datasketch.
"""

import os

if __name__ == "__main__":  # run as a script: pin BLAS before numpy loads it
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")  # single thread, like the libraries we compare to

import argparse
import functools
import importlib.util
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from refimpl.index import Distance, ExactIndex, HnswConfig, HnswIndex

K = 10
EFS = (16, 32, 64, 128, 256)
Matrix = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Dataset:
    """Base vectors, queries and the exact top-k of every query."""

    name: str
    base: Matrix
    queries: Matrix
    truth: Ids


@dataclass(frozen=True)
class Measurement:
    """One row of the table."""

    dataset: str
    system: str
    ef: int
    indexed: int
    build_s: float
    recall: float
    qps_single: float
    qps_batch: float
    recall_single: float = float("nan")
    """Recall@10 of the one-at-a-time answers (the first ``--single-queries`` queries): our
    single-query search expands differently from the batched one, so it is measured too."""

    @property
    def build_rate(self) -> float:
        """Points inserted per second."""
        return self.indexed / self.build_s if self.build_s > 0 else float("nan")


def normalised(vectors: npt.NDArray[np.float64]) -> Matrix:
    """Unit-length float32 rows (the data is cosine; every system sees the same vectors)."""
    out = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(out, dtype=np.float32)


def clustered(n: int, n_queries: int, dim: int, clusters: int, seed: int) -> tuple[Matrix, Matrix]:
    """A mixture of Gaussian clusters with unequal spreads; queries from the same mixture."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    spreads = rng.uniform(0.05, 0.6, clusters)
    labels = rng.integers(0, clusters, n + n_queries)
    points = centres[labels] + rng.standard_normal((n + n_queries, dim)) * spreads[labels, None]
    data = normalised(points)
    return data[:n], data[n:]


def iid(n: int, n_queries: int, dim: int, seed: int) -> tuple[Matrix, Matrix]:
    """Independent Gaussian vectors: no clusters for a graph to exploit."""
    data = normalised(np.random.default_rng(seed).standard_normal((n + n_queries, dim)))
    return data[:n], data[n:]


def numpy_top_k(base: Matrix, queries: Matrix, k: int) -> Ids:
    """Plain numpy brute force: one matmul, one argpartition, a sort of the k."""
    scores = queries @ base.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def make_dataset(name: str, base: Matrix, queries: Matrix) -> Dataset:
    """Attach the exact ground truth (float64 scores, so no float32 ties decide it)."""
    truth = numpy_top_k(base.astype(np.float64), queries.astype(np.float64), K)
    return Dataset(name, base, queries, truth)


def recall(found: Sequence[Sequence[int]] | Ids, truth: Ids) -> float:
    """Mean fraction of the true top-k found."""
    hits = [len(set(map(int, f[:K])) & set(map(int, t))) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / K


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``action`` once; return its value and the CPU seconds this process spent on it
    (every system runs in this one thread, and other load on a shared machine then does not
    distort the ratios)."""
    start = time.process_time()
    value = action()
    return value, time.process_time() - start


REPEAT = [3]
"""Passes over the queries per timing (``--repeat``); the median pass is reported."""


def median_timed(action: Callable[[], Any]) -> tuple[Any, float]:
    """:func:`timed` ``REPEAT`` times: the first pass's value and the median CPU seconds (a
    shared machine slows single passes at random; the median ignores the outliers)."""
    value, first = timed(action)
    seconds = [first] + [timed(action)[1] for _ in range(REPEAT[0] - 1)]
    return value, float(np.median(seconds))


def single_qps(search: Callable[[Matrix], Any], queries: Matrix) -> tuple[list[Any], float]:
    """Answers and queries per second, one query at a time."""
    answers, seconds = median_timed(lambda: [search(q) for q in queries])
    return answers, len(queries) / seconds


def bench_ours(data: Dataset, efs: Sequence[int], n_single: int) -> list[Measurement]:
    """Our HNSW (graph search forced: full_scan_threshold 0) at every ef."""
    index = HnswIndex(data.base.shape[1], Distance.COSINE, HnswConfig(full_scan_threshold_kb=0))
    _, build = timed(lambda: index.upsert(list(range(len(data.base))), data.base))
    rows = []
    for ef in efs:
        batch, seconds = median_timed(functools.partial(index.search_batch, data.queries, K, ef=ef))
        found = [[int(hit.id) for hit in hits] for hits in batch]
        single, qps = single_qps(
            functools.partial(index.search, k=K, ef=ef), data.queries[:n_single]
        )
        single_found = [[int(hit.id) for hit in hits] for hits in single]
        rows.append(
            Measurement(
                data.name,
                "ours hnsw",
                ef,
                len(data.base),
                build,
                recall(found, data.truth),
                qps,
                len(data.queries) / seconds,
                recall(single_found, data.truth[:n_single]),
            )
        )
    return rows


def bench_hnswlib(data: Dataset, efs: Sequence[int], n_single: int) -> list[Measurement]:
    """hnswlib (C++), one thread, same m and ef_construct."""
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=data.base.shape[1])
    index.init_index(max_elements=len(data.base), ef_construction=100, M=16, random_seed=0)
    index.set_num_threads(1)
    _, build = timed(lambda: index.add_items(data.base, np.arange(len(data.base))))
    rows = []
    for ef in efs:
        index.set_ef(max(ef, K))
        (labels, _), seconds = median_timed(lambda: index.knn_query(data.queries, K, num_threads=1))
        single, qps = single_qps(lambda q: index.knn_query(q, K), data.queries[:n_single])
        single_labels = [labels_of_one[0] for labels_of_one, _ in single]
        rows.append(
            Measurement(
                data.name,
                "hnswlib",
                ef,
                len(data.base),
                build,
                recall(labels, data.truth),
                qps,
                len(data.queries) / seconds,
                recall(single_labels, data.truth[:n_single]),
            )
        )
    return rows


def bench_datasketch(
    data: Dataset, efs: Sequence[int], n_points: int, n_single: int
) -> list[Measurement]:
    """datasketch's pure-Python HNSW on the first ``n_points`` points (recall against the
    exact answer on that subset)."""
    from datasketch.hnsw import HNSW

    base = data.base[:n_points]
    truth = numpy_top_k(base, data.queries, K)
    index = HNSW(
        distance_func=lambda a, b: 1.0 - float(np.dot(a, b)),
        m=16,
        ef_construction=100,
        m0=32,
        seed=0,
    )

    def build() -> None:
        for key, vector in enumerate(base):
            index.insert(key, vector)

    _, seconds_build = timed(build)
    queries = data.queries[:n_single]
    rows = []
    for ef in efs:
        answers, qps = single_qps(functools.partial(index.query, k=K, ef=max(ef, K)), queries)
        found = [[key for key, _ in answer] for answer in answers]
        rows.append(
            Measurement(
                data.name,
                f"datasketch ({n_points} pts)",
                ef,
                n_points,
                seconds_build,
                recall(found, truth[:n_single]),
                qps,
                float("nan"),
            )
        )
    return rows


def bench_brute(data: Dataset, n_single: int) -> list[Measurement]:
    """numpy brute force (matmul + argpartition) and our exact search, batched and single."""
    index = ExactIndex(data.base.shape[1], Distance.COSINE)

    def build() -> None:
        index.upsert(list(range(len(data.base))), data.base)
        index.prepare()  # the clustering that lets batched scans skip clusters

    _, build_s = timed(build)
    numpy_found, numpy_s = median_timed(lambda: numpy_top_k(data.base, data.queries, K))
    _, numpy_qps = single_qps(
        lambda q: numpy_top_k(data.base, q[None, :], K), data.queries[:n_single]
    )
    ours, ours_s = median_timed(lambda: index.search_batch(data.queries, K))
    ours_found = [[int(hit.id) for hit in hits] for hits in ours]
    _, ours_qps = single_qps(lambda q: index.search(q, K), data.queries[:n_single])
    n = len(data.base)
    return [
        Measurement(
            data.name,
            "numpy brute",
            0,
            n,
            0.0,
            recall(numpy_found, data.truth),
            numpy_qps,
            len(data.queries) / numpy_s,
        ),
        Measurement(
            data.name,
            "ours exact",
            0,
            n,
            build_s,
            recall(ours_found, data.truth),
            ours_qps,
            len(data.queries) / ours_s,
        ),
    ]


def available(module: str) -> bool:
    """True when an optional dependency is installed; says so when it is not."""
    if importlib.util.find_spec(module) is None:
        print(f"[skip] {module} is not installed (pip install '.[bench]' to compare with it)")
        return False
    return True


def print_table(rows: Sequence[Measurement]) -> None:
    """The raw figures, one line per system and ef."""
    print(
        f"{'dataset':<10} {'system':<26} {'ef':>4} {'build s':>8} {'pts/s':>8} "
        f"{'recall@10':>9} {'recall 1':>8} {'QPS 1':>8} {'QPS batch':>9}"
    )
    for r in rows:
        print(
            f"{r.dataset:<10} {r.system:<26} {r.ef:>4} {r.build_s:>8.1f} {r.build_rate:>8.0f} "
            f"{r.recall:>9.4f} {r.recall_single:>8.4f} {r.qps_single:>8.0f} {r.qps_batch:>9.0f}"
        )


def print_ratios(rows: Sequence[Measurement]) -> None:
    """Ours against hnswlib (same dataset and ef), datasketch and numpy brute force."""
    by_key = {(r.dataset, r.system, r.ef): r for r in rows}
    for r in rows:
        if r.system != "ours hnsw":
            continue
        parts = [f"{r.dataset:<10} ef={r.ef:<4}"]
        lib = by_key.get((r.dataset, "hnswlib", r.ef))
        if lib is not None:
            parts.append(
                f"vs hnswlib: recall {r.recall - lib.recall:+.4f} "
                f"(one at a time {r.recall_single - lib.recall_single:+.4f}), build 1/{lib.build_rate / r.build_rate:.1f}, "
                f"QPS 1/{lib.qps_single / r.qps_single:.1f}, batch 1/{lib.qps_batch / r.qps_batch:.1f}"
            )
        sketch = next(
            (
                x
                for x in rows
                if x.dataset == r.dataset and x.ef == r.ef and x.system.startswith("datasketch")
            ),
            None,
        )
        if sketch is not None:
            parts.append(
                f"vs datasketch: build x{r.build_rate / sketch.build_rate:.1f}, "
                f"QPS x{r.qps_single / sketch.qps_single:.1f}"
            )
        brute = by_key.get((r.dataset, "numpy brute", 0))
        if brute is not None:
            parts.append(
                f"vs numpy brute: QPS x{r.qps_single / brute.qps_single:.1f}, "
                f"batch x{r.qps_batch / brute.qps_batch:.1f}"
            )
        print("; ".join(parts))
    for dataset in sorted({r.dataset for r in rows}):
        brute, exact = (
            by_key.get((dataset, "numpy brute", 0)),
            by_key.get((dataset, "ours exact", 0)),
        )
        if brute is not None and exact is not None:
            print(
                f"{dataset:<10} exact search vs numpy matmul+argpartition: batched "
                f"x{exact.qps_batch / brute.qps_batch:.2f}, single x{exact.qps_single / brute.qps_single:.2f}"
            )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    parser.add_argument(
        "--datasets", default="clustered,iid", help="comma-separated: clustered,iid"
    )
    parser.add_argument("--efs", default=",".join(map(str, EFS)), help="comma-separated ef values")
    parser.add_argument(
        "--single-queries", type=int, default=300, help="queries timed one at a time (per ef)"
    )
    parser.add_argument(
        "--datasketch-n",
        type=int,
        default=0,
        help="points datasketch indexes (0: all of them, as the others; its build is pure Python)",
    )
    parser.add_argument("--no-datasketch", action="store_true", help="skip datasketch")
    parser.add_argument(
        "--systems", default="brute,ours,hnswlib,datasketch", help="comma-separated subset"
    )
    parser.add_argument(
        "--n", type=int, default=100_000, help="base vectors of the clustered set (quick: 1500)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="passes per query timing; the median is reported"
    )
    parser.add_argument("--json", help="also write the measurements to this file")
    return parser.parse_args(argv)


def datasets(options: argparse.Namespace) -> list[Dataset]:
    """The generated data, deterministic from fixed seeds."""
    wanted = options.datasets.split(",")
    out = []
    if "clustered" in wanted:
        n, q = (1_500, 30) if options.quick else (options.n, 1_000)
        out.append(make_dataset("clustered", *clustered(n, q, 128, 100, seed=7)))
    if "iid" in wanted:
        n, q = (600, 30) if options.quick else (20_000, 1_000)
        out.append(make_dataset("iid", *iid(n, q, 96, seed=11)))
    return out


def main(argv: Sequence[str] | None = None) -> list[Measurement]:
    """Run every available system on every dataset; print the table and the ratios."""
    options = parse(argv)
    REPEAT[0] = 1 if options.quick else max(1, options.repeat)
    efs = [int(x) for x in options.efs.split(",")]
    n_single = 10 if options.quick else options.single_queries
    sketch_n = 300 if options.quick else options.datasketch_n
    systems = options.systems.split(",")
    with_hnswlib = "hnswlib" in systems and available("hnswlib")
    with_datasketch = (
        "datasketch" in systems and not options.no_datasketch and available("datasketch")
    )
    rows: list[Measurement] = []
    for data in datasets(options):
        print(
            f"== {data.name}: {data.base.shape[0]} x {data.base.shape[1]}, "
            f"{len(data.queries)} queries",
            flush=True,
        )
        if "brute" in systems:
            rows += bench_brute(data, n_single)
        if "ours" in systems:
            rows += bench_ours(data, efs, n_single)
        if with_hnswlib:
            rows += bench_hnswlib(data, efs, n_single)
        if with_datasketch:
            n_sketch = min(sketch_n, len(data.base)) if sketch_n > 0 else len(data.base)
            rows += bench_datasketch(data, efs, n_sketch, min(n_single, 100))
    print_table(rows)
    print_ratios(rows)
    if options.json:
        with open(options.json, "w") as handle:
            json.dump([asdict(r) | {"build_rate": r.build_rate} for r in rows], handle, indent=1)
    return rows


if __name__ == "__main__":
    main()
