"""The replicated key-value state machine and its command encoding."""

from __future__ import annotations

from refimpl.ids import LogIndex
from refimpl.sim import Command, KvStateMachine
from refimpl.testing import KvOp, OpKind


def test_commands_round_trip_through_bytes() -> None:
    """A command survives encode/decode unchanged (it travels through the log as bytes)."""
    for op in (
        KvOp(OpKind.PUT, "x", "1"),
        KvOp(OpKind.GET, "y"),
        KvOp(OpKind.CAS, "x", "2", "1"),
        KvOp(OpKind.CAS, "x", "2", None),
    ):
        cmd = Command(3, 7, op)
        data = cmd.encode()
        assert Command.decode(data) == cmd
        # Bytes that were never encoded here (as read from a disk: not memoised) decode too.
        assert Command.decode(data.replace(b"[3,7,", b"[3,8,")) == Command(3, 8, op)


def test_apply_returns_client_visible_results() -> None:
    """put returns nothing, get the value, cas whether it swapped."""
    sm = KvStateMachine()
    results = [
        sm.apply(LogIndex(i + 2), Command(1, i, op).encode())
        for i, op in enumerate(
            [
                KvOp(OpKind.GET, "x"),
                KvOp(OpKind.PUT, "x", "1"),
                KvOp(OpKind.CAS, "x", "2", "0"),
                KvOp(OpKind.CAS, "x", "2", "1"),
                KvOp(OpKind.GET, "x"),
            ]
        )
    ]
    assert results == [None, None, False, True, "2"]
    assert sm.applied_index == 6


def test_snapshot_restores_state_and_applied_index() -> None:
    """The snapshot blob holds the map and the applied index together (atomically)."""
    sm = KvStateMachine()
    sm.apply(LogIndex(2), Command(1, 1, KvOp(OpKind.PUT, "k", "v")).encode())
    sm.skip(LogIndex(3))
    copy = KvStateMachine.decode(sm.encode())
    assert copy.data == {"k": "v"} and copy.applied_index == 3
    assert KvStateMachine.decode(b"").applied_index == 0
