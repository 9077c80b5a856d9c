"""Benchmark of the Raft simulator: virtual time simulated per wall second, seeds per minute.

Setting: 5 peers, ``tick_period_ms = 100`` (Qdrant's default), every fault on (drops,
duplicates, delays, partitions, crashes with torn writes), three clients writing, every
invariant checked after every event. The figure of merit is the speed-up over real time:
virtual seconds simulated per wall-clock second (target: at least 1000x).
"""

from __future__ import annotations

import time

from refimpl.sim import Faults, SimOptions, run_simulation

TICK_PERIOD_MS = 100


def measure(peers: int, ticks: int, seeds: int, faults: Faults) -> tuple[float, float, int]:
    """Returns (virtual seconds per wall second, seeds per minute, events per second)."""
    options = SimOptions(peers=peers, ticks=ticks)
    started = time.perf_counter()
    virtual_ticks = 0
    events = 0
    for seed in range(seeds):
        report = run_simulation(seed, options, faults)
        virtual_ticks += report.ticks
        events += report.events
    wall = time.perf_counter() - started
    virtual_s = virtual_ticks * TICK_PERIOD_MS / 1000
    return virtual_s / wall, seeds / wall * 60, int(events / wall)


def main() -> None:
    """Print the table."""
    rows = [
        ("5 peers, no faults", 5, Faults()),
        ("5 peers, every fault", 5, Faults.everything()),
        ("3 peers, every fault", 3, Faults.everything()),
    ]
    print(f"{'setting':<24} {'speed-up':>10} {'seeds/min':>10} {'events/s':>10}")
    for name, peers, faults in rows:
        speedup, per_minute, per_second = measure(peers, 1000, 10, faults)
        print(f"{name:<24} {speedup:>9.0f}x {per_minute:>10.0f} {per_second:>10}")
    print(f"(1000 ticks per seed plus heal and liveness check; tick = {TICK_PERIOD_MS} ms)")


if __name__ == "__main__":
    main()
