"""Whole randomized simulations: reproducible from (seed, faults), every checker quiet."""

from __future__ import annotations

import argparse

import pytest

from refimpl.sim import Faults, SimOptions, Transcript, run_simulation
from refimpl.sim.cli import add_subcommand, handle_sim, run_soak
from refimpl.testing import InvariantViolationError, RaftInvariants
from tests.scenarios.support import seeds


def test_a_run_is_reproduced_exactly_from_seed_and_faults() -> None:
    """Same (seed, faults, options) → byte-identical transcript; another seed → a different one."""
    options = SimOptions(peers=3, ticks=300)
    texts = []
    for seed in (7, 7, 8):
        transcript = Transcript(heartbeats=True)
        run_simulation(seed, options, Faults.everything(), transcript)
        texts.append(transcript.text())
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_a_run_without_checks_is_the_same_run() -> None:
    """``checks=False`` (benchmarks only) changes nothing the run does: same transcript, report."""
    options = SimOptions(peers=5, ticks=300)
    results: list[object] = []
    for checks in (True, False):
        transcript = Transcript(heartbeats=True)
        report = run_simulation(3, options, Faults.everything(), transcript, checks=checks)
        assert report.ok
        results.append((transcript.text(), report.events, report.ticks, report.leaders_by_term))
        results.append((report.max_applied, report.proposals, report.committed))
    assert results[0] == results[2] and results[1] == results[3]


@pytest.mark.parametrize("seed", seeds(30))
def test_every_fault_on_keeps_every_invariant(seed: int) -> None:
    """G1–G6 and L hold under drops, duplicates, delays, partitions and torn crashes."""
    report = run_simulation(seed, SimOptions(peers=3 + seed % 3, ticks=400), Faults.everything())
    assert report.ok, [*report.violations, report.replay_command()]
    assert report.committed > 0


def test_checker_catches_two_leaders_in_one_term() -> None:
    """The G1 checker can fail: two become-leader events for one term are a violation."""
    checker = RaftInvariants()
    checker.on_become_leader(1, 3, 0, lambda i: None)  # type: ignore[arg-type]
    with pytest.raises(InvariantViolationError, match="G1"):
        checker.on_become_leader(2, 3, 0, lambda i: None)  # type: ignore[arg-type]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="refimpl")
    add_subcommand(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sim", *argv])


def test_cli_runs_one_simulation_and_prints_a_summary() -> None:
    """`refimpl sim --seed S ...` prints leaders per term, commits and violations; exit 0."""
    out: list[str] = []
    args = _args(
        "--seed", "3", "--peers", "3", "--ticks", "200", "--drop", "0.05", "--crash-every", "50"
    )
    assert args.handler is handle_sim
    assert handle_sim(args, out.append) == 0
    assert out[0].startswith("seed 3:")
    assert out[1].startswith("leaders per term: ")
    assert out[-1] == "violations: 0"


def test_soak_reports_count_and_exit_code() -> None:
    """`refimpl sim soak --seeds N` runs N seeds with every fault on and summarises."""
    out: list[str] = []
    assert run_soak(2, 0, SimOptions(peers=3, ticks=150), out.append) == 0
    assert out[-1].startswith("soak: 2 seeds, 0 with violations")
    args = _args("soak", "--seeds", "2", "--first-seed", "1", "--ticks", "100")
    assert handle_sim(args, out.append) == 0
    assert out[-1].startswith("soak: 2 seeds, 0 with violations")


def test_transcript_flag_prints_every_event() -> None:
    """`--transcript` prints the run's event lines before the summary."""
    out: list[str] = []
    assert handle_sim(_args("--seed", "2", "--ticks", "60", "--transcript"), out.append) == 0
    assert out[0].startswith("t=") and any("role" in line for line in out)


def test_replay_command_round_trips_through_the_parser() -> None:
    """The printed replay command parses back to the same options and faults."""
    report = run_simulation(5, SimOptions(peers=3, ticks=100, pre_vote=False), Faults.everything())
    argv = report.replay_command().split()[2:]
    args = _args(*argv)
    assert (args.seed, args.peers, args.ticks, args.no_prevote) == (5, 3, 100, True)
    assert args.drop_probability == Faults.everything().drop_probability
    assert args.torn_writes is True


def test_cli_exits_non_zero_and_prints_the_replay_on_a_violation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken core (votes granted to anybody) is caught, reported, and replayable."""
    import refimpl.raft.core

    monkeypatch.setattr(refimpl.raft.core, "vote_granted", lambda **kwargs: True)
    out: list[str] = []
    args = _args(
        "--seed", "1", "--peers", "5", "--ticks", "600", "--no-prevote", "--partition-every", "20"
    )
    assert handle_sim(args, out.append) == 1
    assert any(line.strip().startswith(("G1", "G2", "G3", "G4", "G5", "G6")) for line in out), out
    assert out[-1].startswith("replay: refimpl sim --seed 1 --peers 5 --ticks 600 --no-prevote")


def test_static_cuts_are_data_and_replay() -> None:
    """Asymmetric partitions are data: `--cut 1:2` blocks n1→n2 from tick 0 and replays."""
    out: list[str] = []
    args = _args("--seed", "4", "--ticks", "100", "--cut", "1:2", "--cut", "2:1", "--transcript")
    faults = Faults(cut_links=((1, 2), (2, 1)))
    assert faults.to_args() == ["--cut", "1:2", "--cut", "2:1"]
    assert handle_sim(args, out.append) == 0
    before_heal = [ln for ln in out if ln.startswith("t=") and int(ln[2:].split()[0]) <= 100]
    crossing = [ln for ln in before_heal if ln.split()[1] in ("n1→n2", "n2→n1")]
    assert crossing and all(ln.endswith("[blocked]") for ln in crossing)
