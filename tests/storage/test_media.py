"""Shard media: replacing a shard's whole content is atomic, on disk after a crash at any step."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from refimpl.points import UpsertPoints
from refimpl.storage import ShardConfig, ShardStore, media
from refimpl.storage.media import RESTORE_MARKER, DiskMedium, MemoryMedium

OLD = {"meta": b"old meta", "data": b"old data"}
NEW = {"meta": b"new meta", "vectors": b"new vectors"}


def _old_shard(directory: Path) -> DiskMedium:
    medium = DiskMedium(directory)
    medium.write_checkpoint(OLD)
    medium.log.append(b"old record")
    medium.log.sync()
    return medium


def test_replace_all_swaps_the_checkpoint_and_empties_the_log(tmp_path: Path) -> None:
    medium = _old_shard(tmp_path / "s")
    medium.replace_all(NEW)
    assert medium.read_checkpoint() == NEW
    assert medium.log.read() == b""
    medium.close()
    reopened = DiskMedium(tmp_path / "s")
    assert reopened.read_checkpoint() == NEW and reopened.log.read() == b""
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["checkpoint", "wal.log"]
    reopened.close()


class _CrashError(Exception):
    pass


@pytest.mark.parametrize(
    "step",
    ["before the mark", "after the mark", "after moving the old set aside",
     "after moving the new set in", "after emptying the log"],
)  # fmt: skip
def test_a_crash_at_any_step_leaves_the_old_or_the_new_shard_never_a_mix(
    tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash is an exception at the step (the process dies there: nothing after it runs);
    the next open sees the old shard (before the mark) or the new one (after it)."""
    directory = tmp_path / "s"
    medium = _old_shard(directory)
    renames: list[str] = []
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        renamed = real_rename(self, target)
        renames.append(self.name)
        if step == "after moving the old set aside" and self.name == "checkpoint":
            raise _CrashError
        if step == "after moving the new set in" and self.name == "checkpoint.next":
            raise _CrashError
        return renamed

    real_replace = type(medium.log).replace

    def replace(log: object, data: bytes) -> None:
        real_replace(log, data)  # type: ignore[arg-type]
        if step == "after emptying the log":
            raise _CrashError

    real_durably = media._write_durably

    def write_durably(path: Path, data: bytes) -> None:
        if path.name == RESTORE_MARKER and step == "before the mark":
            raise _CrashError
        real_durably(path, data)
        if path.name == RESTORE_MARKER and step == "after the mark":
            raise _CrashError

    monkeypatch.setattr(Path, "rename", rename)
    monkeypatch.setattr(type(medium.log), "replace", replace)
    monkeypatch.setattr(media, "_write_durably", write_durably)
    with pytest.raises(_CrashError):
        medium.replace_all(NEW)
    monkeypatch.undo()
    medium.close()

    reopened = DiskMedium(directory)
    if step == "before the mark":
        assert reopened.read_checkpoint() == OLD
        assert reopened.log.read() == b"old record"
    else:
        assert reopened.read_checkpoint() == NEW
        assert reopened.log.read() == b""
    assert sorted(p.name for p in directory.iterdir()) == ["checkpoint", "wal.log"]
    reopened.close()


def test_an_unmarked_next_set_is_discarded_on_open(tmp_path: Path) -> None:
    """A half-written ``checkpoint.next/`` without the mark is not the winner: the old shard
    stands (the existing checkpoint-swap recovery)."""
    directory = tmp_path / "s"
    _old_shard(directory).close()
    (directory / "checkpoint.next").mkdir()
    (directory / "checkpoint.next" / "meta").write_bytes(b"half")
    reopened = DiskMedium(directory)
    assert reopened.read_checkpoint() == OLD and reopened.log.read() == b"old record"
    reopened.close()
    shutil.rmtree(directory)


def test_the_memory_twin_replaces_in_one_step_and_keeps_its_log_object() -> None:
    medium = MemoryMedium()
    medium.write_checkpoint(OLD)
    log = medium.log
    log.append(b"unsynced")
    medium.replace_all(NEW)
    assert medium.read_checkpoint() == NEW
    assert medium.log is log and log.read() == b""
    medium.crash()
    assert medium.read_checkpoint() == NEW and medium.log.read() == b""


def test_a_shard_replaced_by_a_snapshot_survives_a_crash_after_the_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ShardStore.replaced_by on disk: the replica holds the snapshot's points afterwards, and
    a crash once the new set is marked still opens as the snapshot (the old code deleted the
    shard first: a crash there left an empty replica)."""
    config = ShardConfig(dim=2)
    source = ShardStore.in_memory(config)
    source.apply(UpsertPoints((1, 2), np.ones((2, 2), np.float32), (None, None)), wait=True)
    files = source.snapshot_files()
    target = ShardStore.open(tmp_path / "t", config)
    target.apply(UpsertPoints((7,), np.ones((1, 2), np.float32), (None,)), wait=True)
    replaced = target.replaced_by(files)
    assert sorted(replaced.matching_ids(None)) == [1, 2]
    replaced.close()

    crashed = ShardStore.open(tmp_path / "u", config)
    crashed.apply(UpsertPoints((7,), np.ones((1, 2), np.float32), (None,)), wait=True)

    def die(self: DiskMedium) -> None:
        raise _CrashError

    monkeypatch.setattr(DiskMedium, "_complete_replacement", die)
    with pytest.raises(_CrashError):
        crashed.replaced_by(files)
    monkeypatch.undo()
    crashed.close()
    reopened = ShardStore.open(tmp_path / "u", config)
    assert sorted(reopened.matching_ids(None)) == [1, 2]
    reopened.close()
