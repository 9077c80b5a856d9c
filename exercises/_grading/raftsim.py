"""Simulator checks for the Raft exercises: many seeded runs with the learner's rule inside.

Rules: the learner's function is already plugged into ``refimpl.raft`` (so every simulated
node uses it); each seed is one :func:`refimpl.sim.run_simulation` under the given faults, with
every safety checker (G1-G5) after every event, linearizability of the client history (G6) and
liveness after heal (L). A failing seed is re-run with a transcript (the run is a pure function
of the seed, so the replay is the same run) and reported with its last events.
"""

from __future__ import annotations

from exercises._grading.api import CheckFailedError, smallest_failure
from refimpl.ids import PeerId
from refimpl.raft import RaftConfig
from refimpl.sim import Faults, SimCluster, SimOptions, Transcript, run_simulation
from refimpl.sim.kv import Command
from refimpl.testing.invariants import RaftInvariants
from refimpl.testing.linearizability import KvOp, OpKind

TRANSCRIPT_TAIL_LINES = 40


def _run_one(seed: int, options: SimOptions, faults: Faults) -> None:
    try:
        report = run_simulation(seed, options, faults)
    except Exception as exc:
        exc.add_note(f"(inside simulation seed {seed})")
        raise
    if report.ok:
        return
    transcript = Transcript(heartbeats=False)
    run_simulation(seed, options, faults, transcript)
    lines = transcript.lines
    shown = lines[-TRANSCRIPT_TAIL_LINES:]
    head = [
        f"simulation seed {seed}, {options.peers} peers, {options.ticks} ticks, faults {faults}",
        f"(the same schedule with refimpl's own rule: {report.replay_command()})",
    ]
    if len(lines) > len(shown):
        head.append(f"... {len(lines) - len(shown)} earlier events left out ...")
    raise CheckFailedError(
        "; ".join(report.violations),
        seed=seed,
        transcript="\n".join(head + shown),
        size=len(lines),
    )


def check_simulations(seeds: range, options: SimOptions, faults: Faults) -> None:
    """Run every seed; raise the failure with the shortest transcript among a few failing."""
    smallest_failure(seeds, lambda seed: _run_one(seed, options, faults), keep_looking=3)


def _command(n: int) -> bytes:
    return Command(99, n, KvOp(OpKind.PUT, "k", str(n))).encode()


def _applied(cluster: SimCluster, peers: list[int], index: int) -> bool:
    return all(cluster.nodes[PeerId(p)].sm.applied_index >= index for p in peers)


def stale_candidate_scenario(seed: int) -> None:
    """Raft §5.4.1 (scenario A6): a peer that missed committed entries must not become leader.

    Five peers, no pre-vote: a leader commits three entries with two followers while the
    other two are cut off; then the leader is isolated and one of the stale peers times out
    first. It must not win (the fresh peers refuse it), and the next leader must hold the
    committed entries; the invariant checker fails the run the moment a leader lacks them.
    """
    config = RaftConfig(id=PeerId(1), pre_vote=False, check_quorum=False)
    transcript = Transcript(heartbeats=False)
    cluster = SimCluster(
        peers=5, seed=seed, raft=config, transcript=transcript, checker=RaftInvariants(strict=True)
    )
    try:
        if not cluster.run_until(lambda c: c.leader() is not None, 300):
            raise CheckFailedError("no leader within 300 ticks on a healthy network", seed=seed)
        old = int(cluster.leader() or 0)
        others = [p for p in range(1, 6) if p != old]
        fresh, stale = others[:2], others[2:]
        cluster.partition([old, *fresh], stale)
        index = 0
        for n in range(3):
            index = cluster.propose(old, _command(n))
        if not cluster.run_until(lambda c: _applied(c, [old, *fresh], index), 200):
            raise CheckFailedError("three entries were not committed by a majority", seed=seed)
        cluster.partition([old], others)
        cluster.force_timeout(stale[0])
        cluster.run_until(lambda c: c.leader() not in (None, PeerId(old)), 400)
        new = cluster.leader()
        if new is None or new == PeerId(old):
            raise CheckFailedError("no new leader after the old one was isolated", seed=seed)
        index = cluster.propose(int(new), _command(10))
        cluster.run_until(lambda c: _applied(c, others, index), 200)
    except CheckFailedError:
        raise
    except AssertionError as exc:  # the strict checker's violation (an AssertionError)
        raise CheckFailedError(
            str(exc), seed=seed, transcript=transcript.text().rstrip(), size=len(transcript.lines)
        ) from None


def minority_commit_scenario(seed: int) -> None:
    """A leader cut off with one follower (2 of 4 or 5 voters: even seeds 4, odd seeds 5) must
    not commit; the other side elects its own leader if it can; after the heal everybody
    agrees on every index."""
    peers = 4 + seed % 2
    transcript = Transcript(heartbeats=False)
    cluster = SimCluster(
        peers=peers, seed=seed, transcript=transcript, checker=RaftInvariants(strict=True)
    )
    try:
        if not cluster.run_until(lambda c: c.leader() is not None, 300):
            raise CheckFailedError("no leader within 300 ticks on a healthy network", seed=seed)
        old = int(cluster.leader() or 0)
        others = [p for p in range(1, peers + 1) if p != old]
        cluster.partition([old, others[0]], others[1:])
        index = cluster.propose(old, _command(1))
        cluster.run(30)
        commit = cluster.nodes[PeerId(old)].commit
        if commit >= index:
            raise CheckFailedError(
                f"n{old} committed index {index} while only n{old} and n{others[0]} "
                f"(2 of {peers} voters) could store it",
                seed=seed,
                transcript=transcript.text().rstrip(),
            )
        cluster.run_until(lambda c: c.leader() not in (None, PeerId(old)), 300)
        cluster.heal()
        cluster.run(60)
    except CheckFailedError:
        raise
    except AssertionError as exc:  # the strict checker's violation (an AssertionError)
        raise CheckFailedError(
            str(exc), seed=seed, transcript=transcript.text().rstrip(), size=len(transcript.lines)
        ) from None
