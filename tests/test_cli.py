"""The ``refimpl`` command exposes every subcommand the README promises."""

import subprocess
import sys
from pathlib import Path

import pytest

from refimpl.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_every_promised_subcommand_is_registered() -> None:
    """peer, cluster, sim, grade and version are all on the command line."""
    help_text = build_parser().format_help()
    for command in ("peer", "cluster", "sim", "grade", "version"):
        assert command in help_text


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``refimpl version`` prints the version and exits 0."""
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == "refimpl 0.1.0"


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a subcommand the command explains itself and exits non-zero."""
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_sim_subcommand_runs_a_clean_simulation() -> None:
    """``refimpl sim`` runs one seeded simulation and reports no violation (exit 0)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "refimpl.cli",
            "sim",
            "--seed",
            "1",
            "--peers",
            "3",
            "--ticks",
            "200",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "violations: 0" in result.stdout


def test_unknown_flag_fails_with_a_message() -> None:
    """A bad flag exits 2 with argparse's message naming it."""
    result = subprocess.run(
        [sys.executable, "-m", "refimpl.cli", "peer", "--no-such-flag"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--no-such-flag" in result.stderr
