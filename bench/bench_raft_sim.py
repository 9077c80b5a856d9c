"""Benchmark of the Raft simulator: virtual time simulated per wall second, seeds per minute.

Setting: 5 peers, ``tick_period_ms = 100`` (Qdrant's default), every fault on (drops,
duplicates, delays, partitions, crashes with torn writes), three clients writing, every
invariant checked after every event, the history checked for linearizability at the end. The
figure of merit is the speed-up over real time: virtual seconds simulated per wall-clock second
(the issue's target is 1000x). Two timings are measured: the scenarios' (heartbeat every tick,
election timeout 10 ticks) and Qdrant's (heartbeat every 2 ticks, election timeout 20 ticks).
"""

from __future__ import annotations

import time

from refimpl.sim import Faults, SimOptions, run_simulation

TICK_PERIOD_MS = 100
TICKS = 1000
SEEDS = 5


def measure(options: SimOptions, faults: Faults) -> tuple[float, float, float, int]:
    """Returns (virtual s per wall s, virtual s per CPU s, seeds per minute, events per second).

    On a shared machine the CPU-time figure is the fairer one: it does not count the time the
    process waited for a core.
    """
    started = time.perf_counter()
    cpu_started = time.process_time()
    virtual_ticks = 0
    events = 0
    for seed in range(SEEDS):
        report = run_simulation(seed, options, faults)
        assert report.ok, report.violations
        virtual_ticks += report.ticks
        events += report.events
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    virtual_s = virtual_ticks * TICK_PERIOD_MS / 1000
    return virtual_s / wall, virtual_s / cpu, SEEDS / wall * 60, int(events / wall)


def main() -> None:
    """Print the table."""

    def opts(peers: int, hb: int, et: int) -> SimOptions:
        return SimOptions(
            peers=peers, ticks=TICKS, heartbeat_interval_ticks=hb, election_timeout_ticks=et
        )

    rows = [
        ("5 peers, no faults, HB=1 ET=10", opts(5, 1, 10), Faults()),
        ("5 peers, all faults, HB=1 ET=10", opts(5, 1, 10), Faults.everything()),
        ("5 peers, all faults, HB=2 ET=20", opts(5, 2, 20), Faults.everything()),
        ("3 peers, all faults, HB=1 ET=10", opts(3, 1, 10), Faults.everything()),
    ]
    print(
        f"{'setting':<34} {'x real (wall)':>13} {'x real (CPU)':>12} {'seeds/min':>10} {'events/s':>9}"
    )
    for name, options, faults in rows:
        speedup, cpu_speedup, per_minute, per_second = measure(options, faults)
        print(
            f"{name:<34} {speedup:>12.0f}x {cpu_speedup:>11.0f}x {per_minute:>10.0f} {per_second:>9}"
        )
    print(
        f"({SEEDS} seeds x {TICKS} ticks each, plus heal and the liveness check; "
        f"tick = {TICK_PERIOD_MS} ms; seeds/min counts whole checked runs)"
    )


if __name__ == "__main__":
    main()
