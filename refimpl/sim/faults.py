"""Faults as data: the options record that, with a seed, determines a whole simulation.

Rules:

* every fault the simulator can inject is a field here, with its unit in the name; the
  defaults describe a perfect world (no loss, one tick of latency, no crashes);
* a run is a pure function of ``(seed, Faults, cluster options)``: the simulator draws every
  random choice from ``random.Random`` instances derived from the seed, never from the clock;
* :meth:`Faults.to_args` prints the command-line flags that rebuild the same record, so any
  failing run can be replayed by copying one line.

Theory of operation: network faults act on each message as it is sent (drop, duplicate,
delay within ``[delay_min_ticks, delay_max_ticks]`` — different delays reorder messages).
A static partition is data too: ``cut_links`` lists directed links cut from the start.
Schedule faults (``partition_every_ticks``, ``crash_every_ticks``) are random events drawn by
the fault scheduler: roughly every that many ticks it toggles a random partition or crashes a
random node, and it restarts crashed nodes after about ``restart_after_ticks``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Faults", "FaultsError"]


class FaultsError(ValueError):
    """A ``Faults`` record with out-of-range values."""


@dataclass(frozen=True, slots=True)
class Faults:
    """What may go wrong in a simulation (all zero = a reliable world)."""

    drop_probability: float = 0.0
    duplicate_probability: float = 0.0
    delay_min_ticks: int = 1
    delay_max_ticks: int = 1
    partition_every_ticks: int = 0
    """Mean ticks between random partition changes (split, isolate, one-way cut, bridge); 0 = off."""
    crash_every_ticks: int = 0
    """Mean ticks between random crashes; 0 = off."""
    restart_after_ticks: int = 30
    """Mean ticks a crashed node stays down before the scheduler restarts it."""
    torn_writes: bool = False
    """On a crash, keep a random prefix of the unsynced writes, possibly cutting the last append."""
    cut_links: tuple[tuple[int, int], ...] = ()
    """Directed links ``(a, b)`` cut from tick 0 (a → b lost); list both directions for a
    symmetric cut. They stay cut until the first heal."""

    def __post_init__(self) -> None:
        for name in ("drop_probability", "duplicate_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise FaultsError(f"{name} must be in [0, 1], got {value}")
        if not 1 <= self.delay_min_ticks <= self.delay_max_ticks:
            raise FaultsError(
                "need 1 <= delay_min_ticks <= delay_max_ticks, got "
                f"{self.delay_min_ticks}..{self.delay_max_ticks}"
            )
        for name in ("partition_every_ticks", "crash_every_ticks"):
            if getattr(self, name) < 0:
                raise FaultsError(f"{name} must be >= 0")
        if self.restart_after_ticks < 1:
            raise FaultsError("restart_after_ticks must be >= 1")
        for a, b in self.cut_links:
            if a == b or a < 1 or b < 1:
                raise FaultsError(f"cut link {a}:{b} must join two different peers")

    @staticmethod
    def everything() -> Faults:
        """Every fault on, network and disk: the soak setting."""
        return Faults(
            drop_probability=0.05,
            duplicate_probability=0.05,
            delay_min_ticks=1,
            delay_max_ticks=4,
            partition_every_ticks=60,
            crash_every_ticks=80,
            restart_after_ticks=30,
            torn_writes=True,
        )

    def to_args(self) -> list[str]:
        """Command-line flags for ``refimpl sim`` that rebuild this record (non-defaults only)."""
        default = Faults()
        args: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.name == "cut_links":
                for a, b in value:
                    args += ["--cut", f"{a}:{b}"]
            elif isinstance(value, bool):
                args.append(flag)
            else:
                args += [flag, str(value)]
        return args
