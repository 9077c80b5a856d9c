"""The ``refimpl sim`` subcommand: run one simulation, or soak many seeds.

Rules:

* ``refimpl sim --seed S --peers N --ticks T [fault flags]`` runs one simulation and prints a
  summary (leaders per term, commits, violations); it exits 1 on any violation and prints the
  exact command that replays the run;
* ``refimpl sim soak --seeds N [--first-seed S] [--jobs J]`` runs N seeds with every fault on
  (network and disk; 3 or 5 peers, snapshots on for every third seed) and prints the number of
  failing seeds and a replay command for each; exit 1 if any;
* ``--transcript`` prints the run's every event before the summary (for reading a replay);
* the handlers return the exit code instead of calling ``sys.exit``, so tests call them
  directly.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time
from collections.abc import Callable

from refimpl.sim.faults import Faults
from refimpl.sim.runner import SimOptions, SimReport, run_simulation
from refimpl.sim.transcript import Transcript

__all__ = ["add_subcommand", "format_report", "handle_sim", "run_soak", "soak_options"]

Print = Callable[[str], None]


def add_subcommand(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sim`` (and ``sim soak``) on the ``refimpl`` command line."""
    parser = subparsers.add_parser("sim", help="run the deterministic Raft simulator")
    parser.add_argument("mode", nargs="?", choices=["run", "soak"], default="run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=100, help="soak: number of seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="soak: first seed")
    parser.add_argument("--peers", type=int, default=None)
    parser.add_argument("--ticks", type=int, default=None)
    parser.add_argument("--drop-probability", "--drop", type=float, default=0.0)
    parser.add_argument("--duplicate-probability", "--dup", type=float, default=0.0)
    parser.add_argument("--delay-min-ticks", type=int, default=1)
    parser.add_argument("--delay-max-ticks", "--delay-max", type=int, default=1)
    parser.add_argument("--partition-every-ticks", "--partition-every", type=int, default=0)
    parser.add_argument("--crash-every-ticks", "--crash-every", type=int, default=0)
    parser.add_argument("--restart-after-ticks", type=int, default=30)
    parser.add_argument("--torn-writes", action="store_true")
    parser.add_argument(
        "--cut", action="append", default=[], metavar="A:B", help="cut the link A→B from tick 0"
    )
    parser.add_argument("--no-prevote", action="store_true")
    parser.add_argument("--no-checkquorum", action="store_true")
    parser.add_argument("--snapshot-every", type=int, default=0)
    parser.add_argument("--transcript", action="store_true", help="print every event first")
    parser.add_argument("--jobs", type=int, default=1, help="soak: worker processes")
    parser.set_defaults(handler=handle_sim)


def _options(args: argparse.Namespace, peers: int, ticks: int) -> SimOptions:
    return SimOptions(
        peers=args.peers or peers,
        ticks=args.ticks or ticks,
        pre_vote=not args.no_prevote,
        check_quorum=not args.no_checkquorum,
        snapshot_every_entries=args.snapshot_every,
    )


def _faults(args: argparse.Namespace) -> Faults:
    return Faults(
        drop_probability=args.drop_probability,
        duplicate_probability=args.duplicate_probability,
        delay_min_ticks=args.delay_min_ticks,
        delay_max_ticks=args.delay_max_ticks,
        partition_every_ticks=args.partition_every_ticks,
        crash_every_ticks=args.crash_every_ticks,
        restart_after_ticks=args.restart_after_ticks,
        torn_writes=args.torn_writes,
        cut_links=tuple(_link(text) for text in args.cut),
    )


def _link(text: str) -> tuple[int, int]:
    a, sep, b = text.partition(":")
    if not sep or not a.isdigit() or not b.isdigit():
        raise argparse.ArgumentTypeError(f"--cut expects A:B (peer ids), got {text!r}")
    return int(a), int(b)


def format_report(report: SimReport) -> list[str]:
    """The summary lines of one run."""
    terms = ", ".join(f"{t}:n{p}" for t, p in report.leaders_by_term.items())
    lines = [
        f"seed {report.seed}: {report.ticks} ticks, {report.events} events",
        f"leaders per term: {terms or 'none'}",
        f"log: applied through index {report.max_applied}; "
        f"client ops: {report.committed} committed of {report.proposals} proposed",
        f"violations: {len(report.violations)}",
    ]
    lines += [f"  {v}" for v in report.violations]
    if report.violations:
        lines.append(f"replay: {report.replay_command()}")
    return lines


def handle_sim(args: argparse.Namespace, out: Print = print) -> int:
    """Entry point of ``refimpl sim``; returns the process exit code."""
    if args.mode == "soak":
        fixed = _options(args, 5, 400) if args.peers or args.snapshot_every else None
        ticks = args.ticks or 400
        return run_soak(args.seeds, args.first_seed, fixed, out, jobs=args.jobs, ticks=ticks)
    transcript = Transcript(heartbeats=True) if args.transcript else None
    report = run_simulation(args.seed, _options(args, 3, 1000), _faults(args), transcript)
    if transcript is not None:
        for line in transcript.lines:
            out(line)
    for line in format_report(report):
        out(line)
    return 0 if report.ok else 1


def soak_options(seed: int, ticks: int = 400) -> SimOptions:
    """The soak's per-seed variety: 3 or 5 peers, snapshots on or off (PreVote/CheckQuorum on)."""
    return SimOptions(
        peers=3 if seed % 2 else 5,
        ticks=ticks,
        snapshot_every_entries=10 if seed % 3 == 0 else 0,
    )


def _soak_one(job: tuple[int, SimOptions | None, int]) -> SimReport:
    seed, options, ticks = job
    return run_simulation(seed, options or soak_options(seed, ticks), Faults.everything())


def run_soak(
    seeds: int,
    first_seed: int = 0,
    options: SimOptions | None = None,
    out: Print = print,
    *,
    jobs: int = 1,
    ticks: int = 400,
) -> int:
    """Run ``seeds`` seeds with every fault on; print failures with replay commands.

    Without ``options`` each seed gets :func:`soak_options`; ``jobs > 1`` spreads seeds over
    processes (each run is still a pure function of its seed, so the result is the same).
    """
    started = time.perf_counter()
    work = [(seed, options, ticks) for seed in range(first_seed, first_seed + seeds)]
    failures: list[SimReport] = []
    if jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
            reports = list(pool.map(_soak_one, work, chunksize=4))
    else:
        reports = [_soak_one(job) for job in work]
    for report in reports:
        if not report.ok:
            failures.append(report)
            out(f"seed {report.seed}: {report.violations[0]}")
            out(f"  replay: {report.replay_command()}")
    elapsed = time.perf_counter() - started
    out(f"soak: {seeds} seeds, {len(failures)} with violations, {elapsed:.1f} s")
    return 1 if failures else 0
