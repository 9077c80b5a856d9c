"""The trio driver: a real peer process around the sans-IO Raft core.

Modules, bottom up: :mod:`~refimpl.peer.frames` (the p2p frame codec, pure),
:mod:`~refimpl.peer.handshake` (peers prove the cluster secret before anything else),
:mod:`~refimpl.peer.wire` (Raft messages and requests as frame bodies, pure),
:mod:`~refimpl.peer.transport` (what the driver needs from a network),
:mod:`~refimpl.peer.tcp` and :mod:`~refimpl.peer.memnet` (two networks),
:mod:`~refimpl.peer.state` (what it needs from the cluster state),
:mod:`~refimpl.peer.node` (the consensus driver), :mod:`~refimpl.peer.identity`,
:mod:`~refimpl.peer.runner` (a process), :mod:`~refimpl.peer.harness` (a simulation of many),
:mod:`~refimpl.peer.cli` (the commands). The data plane: :mod:`~refimpl.peer.shards` (the
shard stores this peer holds), :mod:`~refimpl.peer.shard_wire` (shard requests between peers),
:mod:`~refimpl.peer.router` (points routed and merged across shards),
:mod:`~refimpl.peer.collections` (collections through consensus),
:mod:`~refimpl.peer.data_plane` (the wiring).

This is, with :mod:`refimpl.api`, the only runtime package that imports trio.
"""

from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.collections import Collections
from refimpl.peer.data_plane import DataPlane, attach_shards
from refimpl.peer.frames import Frame, FrameDecoder, FrameError, FrameType, encode_frame
from refimpl.peer.handshake import HandshakeError
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
from refimpl.peer.router import CollectionNotFoundError, Router, ShardUnavailableError
from refimpl.peer.shards import LocalShard, LocalShards
from refimpl.peer.state import PeerTable, StateMachine
from refimpl.peer.tcp import TcpTransport
from refimpl.peer.transport import InboundHandler, SendFailure, Transport, TransportError

__all__ = [
    "ClusterStateMachine",
    "CollectionNotFoundError",
    "Collections",
    "ConsensusStoppedError",
    "DataPlane",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameType",
    "HandshakeError",
    "InboundHandler",
    "LocalShard",
    "LocalShards",
    "MemoryNetwork",
    "MemoryTransport",
    "NoLeaderError",
    "Peer",
    "PeerOptions",
    "PeerTable",
    "ProposalError",
    "ProposalRejectedError",
    "ProposalTimeoutError",
    "Router",
    "SendFailure",
    "ShardUnavailableError",
    "SimCluster",
    "SimPeer",
    "StateMachine",
    "TcpTransport",
    "Transport",
    "TransportError",
    "attach_shards",
    "encode_frame",
]
