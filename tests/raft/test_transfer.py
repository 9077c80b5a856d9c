"""Leader transfer with TimeoutNow (Raft thesis §3.10; scenario A8b)."""

from __future__ import annotations

import pytest

from refimpl.ids import PeerId
from refimpl.raft import InvalidRequestError, NotLeader, ProposalDropped, Role, TimeoutNow
from tests.raft.pump import Pump

P = PeerId


def test_transfer_to_up_to_date_follower_completes_within_one_election_timeout() -> None:
    """Scenario A8b: the target is leader within 1 ET; no committed entry is lost."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.nodes[leader].propose(b"kept")
    pump.tick(2)
    target = next(p for p in pump.nodes if p != leader)
    pump.nodes[leader].transfer_leader(target)
    pump.deliver_all()
    assert any(isinstance(m, TimeoutNow) for m in pump.delivered)
    pump.tick(1)
    assert pump.leader() == target
    assert pump.nodes[leader].role is Role.FOLLOWER
    pump.nodes[target].propose(b"next")
    pump.tick(2)
    assert all(pump.normal_data(p) == [b"kept", b"next"] for p in pump.nodes)


def test_proposals_are_dropped_during_a_transfer() -> None:
    """The old leader definitely rejects proposals while a transfer is in progress."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    target = next(p for p in pump.nodes if p != leader)
    pump.isolate(target)  # the transfer cannot finish
    pump.nodes[leader].transfer_leader(target)
    with pytest.raises(ProposalDropped):
        pump.nodes[leader].propose(b"x")


def test_stalled_transfer_is_abandoned_after_an_election_timeout() -> None:
    """A transfer that does not finish within an election timeout is aborted."""
    pump = Pump.create(3, check_quorum=False)
    leader = pump.elect()
    pump.tick(2)
    target = next(p for p in pump.nodes if p != leader)
    pump.cut |= {(leader, target)}
    pump.nodes[leader].transfer_leader(target)
    pump.tick(10)
    assert pump.nodes[leader].lead_transferee is None
    pump.nodes[leader].propose(b"ok again")


def test_transfer_to_lagging_target_catches_it_up_first() -> None:
    """The leader sends the target its missing entries, then TimeoutNow."""
    pump = Pump.create(3, check_quorum=False)
    leader = pump.elect()
    pump.tick(2)
    target = next(p for p in pump.nodes if p != leader)
    pump.isolate(target)
    for k in range(5):
        pump.nodes[leader].propose(bytes([k]))
    pump.tick(2)
    pump.heal()
    pump.nodes[leader].transfer_leader(target)
    pump.tick(3)
    assert pump.leader() == target
    assert len(pump.normal_data(target)) == 5


def test_transfer_errors_are_typed() -> None:
    """Followers raise NotLeader; a non-voter target raises InvalidRequestError."""
    pump = Pump.create(3, learners=[P(3)])
    leader = pump.elect()
    f = next(p for p in pump.nodes if p not in (leader, P(3)))
    with pytest.raises(NotLeader):
        pump.nodes[f].transfer_leader(leader)
    with pytest.raises(InvalidRequestError):
        pump.nodes[leader].transfer_leader(P(3))
