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
from refimpl.raft import AppendEntries, RaftConfig, Role
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


def _role(cluster: SimCluster, peer: int) -> Role | None:
    raft = cluster.nodes[PeerId(peer)].raft
    return None if raft is None else raft.role


def _figure_8_steps(cluster: SimCluster) -> None:
    """The schedule of the Raft paper's Figure 8, with entry 3 in the paper's index 2 role."""
    need = CheckFailedError
    cluster.force_timeout(1)
    if not cluster.run_until(lambda c: c.leader() == PeerId(1), 50):
        raise need("setup: n1 did not become leader")
    cluster.run(3)
    cluster.partition([1, 2], [3, 4, 5])  # (a) n1 replicates entry i (term 1) to n2 only
    index = cluster.propose(1, _command(1))
    cluster.run(4)
    cluster.crash(1, torn=False)  # (b) n5 wins term 2 with n3, n4; its entry i never leaves it
    cluster.partition([3, 4, 5], [2])
    cluster.intercept = lambda m: isinstance(m, AppendEntries) and m.src == PeerId(5)
    cluster.force_timeout(5)
    if not cluster.run_until(lambda c: _role(c, 5) is Role.LEADER, 50):
        raise need("setup: n5 did not become leader")
    cluster.crash(5, torn=False)
    cluster.intercept = None
    cluster.held.clear()
    cluster.restart(1)  # (c) n1 or n2 (both hold i) wins and copies i to n3: a majority has it
    cluster.partition([1, 2, 3], [4])
    leader: list[int] = []
    cluster.intercept = lambda m: (
        isinstance(m, AppendEntries)
        and m.src in (PeerId(1), PeerId(2))
        and m.dst == PeerId(3)
        and any(e.index > index for e in m.entries)
    )
    cluster.force_timeout(1)
    if not cluster.run_until(lambda c: c.leader() in (PeerId(1), PeerId(2)), 80):
        raise need("setup: neither n1 nor n2 became leader again")
    leader.append(int(cluster.leader() or 0))
    cluster.run(8)
    cluster.crash(leader[0], torn=False)  # (d) it fails; n5 can win with n3 and n4
    cluster.intercept = None
    cluster.held.clear()
    cluster.restart(5)
    cluster.partition([5, 3, 4], [3 - leader[0]])
    cluster.force_timeout(5)
    cluster.run_until(lambda c: _role(c, 5) is Role.LEADER, 200)
    cluster.run(20)


def figure_8_scenario(seed: int) -> None:
    """Raft Figure 8 in the simulator: an old-term entry on a majority is not yet safe.

    Five peers, one entry per message, no pre-vote. The schedule is scripted (holding some
    AppendEntries back, crashing and restarting peers); the seed only varies timers and
    ordering. With the right commit rule the leader of step (c) never commits the old-term
    entry; with the wrong one it commits and applies it, then n5 is elected and overwrites it,
    which the invariant checker reports (G4 or G3).
    """
    config = RaftConfig(id=PeerId(1), pre_vote=False, check_quorum=False, max_entries_per_message=1)
    transcript = Transcript(heartbeats=False)
    cluster = SimCluster(
        peers=5, seed=seed, raft=config, transcript=transcript, checker=RaftInvariants(strict=True)
    )
    try:
        _figure_8_steps(cluster)
    except CheckFailedError as exc:
        raise CheckFailedError(
            str(exc), seed=seed, transcript=transcript.text().rstrip(), size=len(transcript.lines)
        ) from None
    except AssertionError as exc:  # the strict checker's violation (an AssertionError)
        raise CheckFailedError(
            str(exc), seed=seed, transcript=transcript.text().rstrip(), size=len(transcript.lines)
        ) from None
