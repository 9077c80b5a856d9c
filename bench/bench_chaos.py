"""Chaos against real peer processes (see :mod:`refimpl.testing.chaos` for the rules).

``python bench/bench_chaos.py`` runs 3 peers and 10 faults (``--peers 5``, ``--faults N``,
``--seed S`` to vary); ``--quick`` is the short run. Exit code 1 if anything acknowledged was
lost or the collection history is not linearizable.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from refimpl.testing.chaos import ChaosOptions, run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="chaos against real peers")
    parser.add_argument("--quick", action="store_true", help="3 peers, 3 faults, about a minute")
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--faults", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        options = ChaosOptions(peers=3, faults=3, duration_s=60.0, seed=args.seed)
    else:
        options = ChaosOptions(peers=args.peers, faults=args.faults, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        report = run_chaos(options, Path(tmp))
    for line in report.lines():
        print(line)
    for message in report.server_errors:
        print("  server error:", message)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
