"""The trio driver: a real peer process around the sans-IO Raft core.

Modules, bottom up: :mod:`~refimpl.peer.frames` (the p2p frame codec, pure),
:mod:`~refimpl.peer.wire` (Raft messages and requests as frame bodies, pure),
:mod:`~refimpl.peer.transport` (what the driver needs from a network),
:mod:`~refimpl.peer.tcp` and :mod:`~refimpl.peer.memnet` (two networks),
:mod:`~refimpl.peer.state` (what it needs from the cluster state),
:mod:`~refimpl.peer.node` (the consensus driver), :mod:`~refimpl.peer.identity`,
:mod:`~refimpl.peer.runner` (a process), :mod:`~refimpl.peer.harness` (a simulation of many),
:mod:`~refimpl.peer.cli` (the commands).

This is, with :mod:`refimpl.api`, the only runtime package that imports trio.
"""

from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.frames import Frame, FrameDecoder, FrameError, FrameType, encode_frame
from refimpl.peer.harness import SimCluster, SimPeer
from refimpl.peer.memnet import MemoryNetwork, MemoryTransport
from refimpl.peer.node import (
    ConsensusStoppedError,
    NoLeaderError,
    Peer,
    PeerOptions,
    ProposalError,
    ProposalRejectedError,
    ProposalTimeoutError,
)
from refimpl.peer.state import PeerTable, StateMachine
from refimpl.peer.tcp import TcpTransport
from refimpl.peer.transport import InboundHandler, SendFailure, Transport, TransportError

__all__ = [
    "ClusterStateMachine",
    "ConsensusStoppedError",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameType",
    "InboundHandler",
    "MemoryNetwork",
    "MemoryTransport",
    "NoLeaderError",
    "Peer",
    "PeerOptions",
    "PeerTable",
    "ProposalError",
    "ProposalRejectedError",
    "ProposalTimeoutError",
    "SendFailure",
    "SimCluster",
    "SimPeer",
    "StateMachine",
    "TcpTransport",
    "Transport",
    "TransportError",
    "encode_frame",
]
