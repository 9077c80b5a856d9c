"""Seeds the 10 000-seed soak once failed on, kept as regression tests (liveness rule L).

Each was a follower that lost log entries in a torn crash while the leader had compacted past
them: the leader kept it in REPLICATE behind a full inflight window and asked it about 0/0 in
heartbeats, which always matched, so it was never sent the snapshot it needed.
"""

import pytest

from refimpl.sim.faults import Faults
from refimpl.sim.runner import SimOptions, run_simulation

SOAK_FAULTS = Faults(
    drop_probability=0.05,
    duplicate_probability=0.05,
    delay_max_ticks=4,
    partition_every_ticks=60,
    crash_every_ticks=80,
    torn_writes=True,
)


@pytest.mark.parametrize("seed", [738, 2856, 6636])
def test_a_follower_behind_a_compacted_log_catches_up_after_a_torn_crash(seed: int) -> None:
    """Raft liveness after heal: every live member applies a fresh proposal (soak seed)."""
    options = SimOptions(peers=5, ticks=400, snapshot_every_entries=10)
    report = run_simulation(seed, options, SOAK_FAULTS)
    assert [str(v) for v in report.violations] == []
