"""The simulated network: delays, drops, duplicates and directed partitions, all seeded."""

from __future__ import annotations

import random

import pytest

from refimpl.ids import PeerId, Term, Tick
from refimpl.raft import Message, TimeoutNow
from refimpl.sim import Faults, FaultsError, SendOutcome, SimNetwork


def _msg(src: int, dst: int, term: int = 1) -> TimeoutNow:
    return TimeoutNow(Term(term), PeerId(src), PeerId(dst))


def _drain(net: SimNetwork, until: int) -> list[tuple[int, Message]]:
    out: list[tuple[int, Message]] = []
    for now in range(until + 1):
        while (m := net.pop_due(Tick(now))) is not None:
            out.append((now, m))
    return out


def test_messages_arrive_after_at_least_one_tick_in_send_order() -> None:
    """With a fixed delay the network is FIFO and nothing arrives in the tick it was sent."""
    net = SimNetwork(Faults(), random.Random(0))
    for term in range(1, 4):
        net.send(Tick(5), _msg(1, 2, term))
    assert net.pop_due(Tick(5)) is None
    assert [m.term for _, m in _drain(net, 6)] == [1, 2, 3]


def test_variable_delay_reorders() -> None:
    """Delays drawn from a range reorder messages on one link."""
    net = SimNetwork(Faults(delay_min_ticks=1, delay_max_ticks=5), random.Random(3))
    for term in range(1, 30):
        net.send(Tick(0), _msg(1, 2, term))
    terms = [m.term for _, m in _drain(net, 10)]
    assert sorted(terms) == list(range(1, 30))
    assert terms != sorted(terms)


def test_asymmetric_cut_blocks_one_direction_only() -> None:
    """A cut ``a → b`` loses a's messages to b while b still reaches a."""
    net = SimNetwork(Faults(), random.Random(0))
    net.cut(PeerId(1), PeerId(2), both_ways=False)
    assert net.send(Tick(0), _msg(1, 2)) is SendOutcome.BLOCKED
    assert net.send(Tick(0), _msg(2, 1)) is SendOutcome.QUEUED
    assert [(m.src, m.dst) for _, m in _drain(net, 2)] == [(2, 1)]


def test_cutting_a_link_loses_messages_in_flight() -> None:
    """A partition that starts while a message is in flight loses it."""
    net = SimNetwork(Faults(), random.Random(0))
    net.send(Tick(0), _msg(1, 2))
    net.partition([[PeerId(1)], [PeerId(2)]])
    assert _drain(net, 3) == []


def test_drop_and_duplicate_rates_follow_the_faults() -> None:
    """Drops and duplicates happen at about the configured rates (seeded)."""
    net = SimNetwork(Faults(drop_probability=0.2, duplicate_probability=0.1), random.Random(1))
    outcomes = [net.send(Tick(0), _msg(1, 2)) for _ in range(5000)]
    dropped = outcomes.count(SendOutcome.DROPPED) / 5000
    duplicated = outcomes.count(SendOutcome.DUPLICATED) / 5000
    assert 0.17 < dropped < 0.23
    assert 0.06 < duplicated < 0.10


def test_faults_validate_their_ranges() -> None:
    """Out-of-range fault options are rejected with a clear error."""
    with pytest.raises(FaultsError, match="drop_probability"):
        Faults(drop_probability=1.5)
    with pytest.raises(FaultsError, match="delay"):
        Faults(delay_min_ticks=0)
    assert Faults(drop_probability=0.1, torn_writes=True).to_args() == [
        "--drop-probability",
        "0.1",
        "--torn-writes",
    ]
