"""A tiny replicated key-value state machine for client histories.

Rules:

* a command is bytes: ``Command.encode()`` of ``(client, seq, op)`` where ``op`` is a
  :class:`refimpl.testing.KvOp` (put, get or cas on string values); ``(client, seq)`` makes every
  proposal unique, so a client recognises *its* entry when an index is applied;
* bytes that do not decode as a command are applied as a no-op (on every replica alike);
* ``apply`` is deterministic: every replica applying the same commands in the same order
  holds the same map and returns the same results (get → value, cas → swapped?, put → None);
* the whole state (map and last applied index) is one snapshot blob.

Theory of operation: JSON is slow but readable in a transcript and a snapshot; the simulator
never stores enough commands for speed to matter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from refimpl.ids import LogIndex
from refimpl.testing.linearizability import KvOp, OpKind

__all__ = ["Command", "KvStateMachine"]
_INDEX_0 = LogIndex(0)

KvValue = str | None
_GET, _PUT, _CAS = OpKind.GET, OpKind.PUT, OpKind.CAS
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
"""What ``json.dumps(body, separators=(",", ":"))`` uses, built once instead of per call."""


@dataclass(frozen=True, slots=True)
class Command:
    """A client's command as it travels through the Raft log."""

    client: int
    seq: int
    op: KvOp

    def encode(self) -> bytes:
        """Compact JSON bytes (stable key order, so equal commands give equal bytes)."""
        body = [self.client, self.seq, self.op.kind.value, self.op.key, self.op.value]
        if self.op.kind is OpKind.CAS:
            body.append(self.op.expected)
        data = _COMPACT_JSON.encode(body).encode()
        _remember(data, self)  # every replica will decode these bytes: decoded already
        return data

    @staticmethod
    def decode(data: bytes) -> Command:
        """Inverse of :meth:`encode`."""
        # Every replica applies the same bytes: decode each command once (commands are frozen).
        hashable = type(data) is bytes  # (a bytearray decodes too, but cannot be a key)
        cached = _DECODED.get(data) if hashable else None
        if cached is not None:
            return cached
        body = json.loads(data)
        expected = body[5] if len(body) > 5 else None
        command = Command(body[0], body[1], KvOp(OpKind(body[2]), body[3], body[4], expected))
        if hashable:
            _remember(data, command)
        return command

    def __str__(self) -> str:
        return f"c{self.client}.{self.seq}:{self.op}"


_DECODED: dict[bytes, Command] = {}
_DECODED_MAX = 4096


def _remember(data: bytes, command: Command) -> None:
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()  # a bounded memo: old commands are rarely applied again
    _DECODED[data] = command


@dataclass
class KvStateMachine:
    """The replicated map; ``applied_index`` is stored with it, atomically, in snapshots."""

    data: dict[str, KvValue] = field(default_factory=dict)
    applied_index: LogIndex = _INDEX_0
    sessions: dict[int, tuple[int, object]] = field(default_factory=dict)
    """client -> (last seq applied, its result): a retried command is applied only once."""

    def apply(self, index: LogIndex, command: bytes) -> object:
        """Apply one committed command; returns the client-visible result.

        A command whose ``(client, seq)`` was already applied is not applied again; it returns
        the first result (exactly-once retries, Raft thesis §6.3).
        """
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index
        try:
            cmd = Command.decode(command)
        except (ValueError, IndexError, TypeError):
            return None  # opaque bytes (e.g. from a book example): a no-op on every replica
        session = self.sessions.get(cmd.client)
        if session is not None and session[0] >= cmd.seq:
            return session[1] if session[0] == cmd.seq else None
        result = self._execute(cmd.op)
        self.sessions[cmd.client] = (cmd.seq, result)
        return result

    def _execute(self, op: KvOp) -> object:
        # (``is`` against module names rather than ``match op.kind``: every replica runs this
        # for every command, and each ``case OpKind.X`` is a slow enum lookup in Python 3.11)
        current, kind = self.data.get(op.key), op.kind
        if kind is _GET:
            return current
        if kind is _PUT:
            self.data[op.key] = _as_value(op.value)
            return None
        assert kind is _CAS, kind
        if current != op.expected:
            return False
        self.data[op.key] = _as_value(op.value)
        return True

    def skip(self, index: LogIndex) -> None:
        """Advance past a committed entry that is not a command (no-op, conf change)."""
        assert index > self.applied_index, (index, self.applied_index)
        self.applied_index = index

    def encode(self) -> bytes:
        """Snapshot bytes."""
        sessions = {str(c): list(v) for c, v in self.sessions.items()}
        return json.dumps([self.applied_index, self.data, sessions], sort_keys=True).encode()

    @staticmethod
    def decode(blob: bytes) -> KvStateMachine:
        """Restore from :meth:`encode` (an empty blob is the empty state)."""
        if not blob:
            return KvStateMachine()
        applied, data, sessions = json.loads(blob)
        restored = {int(c): (int(v[0]), v[1]) for c, v in sessions.items()}
        return KvStateMachine(dict(data), LogIndex(applied), restored)


def _as_value(value: object) -> KvValue:
    assert value is None or isinstance(value, str), value
    return value
