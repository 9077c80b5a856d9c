"""The deterministic Raft simulator: many Raft cores in one process, faults as data.

Modules: :mod:`~refimpl.sim.faults` (the options record), :mod:`~refimpl.sim.network`
(messages in flight, cut links), :mod:`~refimpl.sim.disk` (write-back cache, crash, torn
writes), :mod:`~refimpl.sim.kv` (the replicated key-value state machine),
:mod:`~refimpl.sim.cluster` (the scheduler and the one driver loop),
:mod:`~refimpl.sim.client` (clients recording histories), :mod:`~refimpl.sim.runner` (one full
checked run), :mod:`~refimpl.sim.transcript` (readable event lines) and
:mod:`~refimpl.sim.cli` (``refimpl sim``).

Rule: a run is reproduced exactly from ``(seed, Faults, SimOptions)``.
"""

from refimpl.sim.client import Workload
from refimpl.sim.cluster import NodeDownError, RoleChange, Segment, SimCluster, SimNode
from refimpl.sim.disk import SimDisk
from refimpl.sim.faults import Faults, FaultsError
from refimpl.sim.kv import Command, KvStateMachine
from refimpl.sim.network import SendOutcome, SimNetwork
from refimpl.sim.runner import SimOptions, SimReport, check_liveness, run_simulation
from refimpl.sim.scenarios import Figure8, figure8, log_picture, win_election
from refimpl.sim.transcript import Transcript, format_message

__all__ = [
    "Command",
    "Faults",
    "FaultsError",
    "Figure8",
    "KvStateMachine",
    "NodeDownError",
    "RoleChange",
    "Segment",
    "SendOutcome",
    "SimCluster",
    "SimDisk",
    "SimNetwork",
    "SimNode",
    "SimOptions",
    "SimReport",
    "Transcript",
    "Workload",
    "check_liveness",
    "figure8",
    "format_message",
    "log_picture",
    "run_simulation",
    "win_election",
]
