"""refimpl: a teaching reference implementation of Qdrant's distributed mode.

Layers (see ``README.md``):

* sans-IO cores, which never import trio, read a clock or touch a file:
  :mod:`refimpl.raft`, :mod:`refimpl.consensus`, :mod:`refimpl.sharding`,
  :mod:`refimpl.replication`, :mod:`refimpl.index`;
* the deterministic simulator :mod:`refimpl.sim` and the test kit :mod:`refimpl.testing`;
* the trio driver :mod:`refimpl.peer` and the REST layer :mod:`refimpl.api`.
"""

from refimpl.ids import LogIndex, PeerId, PointId, ShardId, Term, Tick

__version__ = "0.1.0"

__all__ = ["LogIndex", "PeerId", "PointId", "ShardId", "Term", "Tick", "__version__"]
