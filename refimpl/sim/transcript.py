"""Readable transcripts: one line per simulator event, for golden tests and the book.

Rules:

* every line starts with ``t=<tick>`` and names peers ``n<id>``; a message line reads
  ``t=12 n1→n2 AppendEntries(term=2, prev=3/1, entries=[4/2], commit=3)`` where ``a/b`` is
  ``index/term``;
* formatting is a pure function of the event, so the same run gives byte-identical text;
* a :class:`Transcript` may leave out heartbeats (empty AppendEntries and their successful
  responses) and even all messages, to keep golden files short; state changes (roles, terms,
  commits, applies), faults and client events are always kept.

Theory of operation: the simulator calls :meth:`Transcript.record` for every event; the
transcript applies its filter and appends a line. Structured records for plotting (role
changes) are kept by the cluster itself, not parsed back from the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import assert_never

from refimpl.ids import PeerId, Tick
from refimpl.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)

__all__ = ["Transcript", "format_entries", "format_message", "is_heartbeat", "peer_name"]


def peer_name(peer: PeerId | None) -> str:
    """``n3`` for peer 3, ``-`` for none."""
    return "-" if peer is None else f"n{peer}"


def format_entries(entries: tuple[Entry, ...]) -> str:
    """``[4/2, 5/2c]``: index/term, with ``c`` for a conf change and ``*`` for a no-op."""
    marks = {EntryKind.NORMAL: "", EntryKind.CONF_CHANGE: "c", EntryKind.NOOP: "*"}
    if len(entries) > 4:
        first, last = entries[0], entries[-1]
        return f"[{first.index}/{first.term}..{last.index}/{last.term} ({len(entries)})]"
    return "[" + ", ".join(f"{e.index}/{e.term}{marks[e.kind]}" for e in entries) + "]"


def format_message(m: Message) -> str:
    """The body of a message line, e.g. ``RequestVote(term=3, last=5/2)``."""
    match m:
        case RequestVote():
            kind = "PreVote" if m.pre_vote else "RequestVote"
            extra = ", transfer" if m.leader_transfer else ""
            return f"{kind}(term={m.term}, last={m.last_log_index}/{m.last_log_term}{extra})"
        case RequestVoteResponse():
            kind = "PreVoteResponse" if m.pre_vote else "RequestVoteResponse"
            return f"{kind}(term={m.term}, granted={m.granted})"
        case AppendEntries():
            read = f", read={m.read_ctx}" if m.read_ctx else ""
            return (
                f"AppendEntries(term={m.term}, prev={m.prev_log_index}/{m.prev_log_term}, "
                f"entries={format_entries(m.entries)}, commit={m.leader_commit}{read})"
            )
        case AppendEntriesResponse():
            read = f", read={m.read_ctx}" if m.read_ctx else ""
            if m.success:
                return f"AppendEntriesResponse(term={m.term}, ok, match={m.match_index}{read})"
            return (
                f"AppendEntriesResponse(term={m.term}, reject={m.match_index}, "
                f"hint={m.reject_hint_index}/{m.reject_hint_term}{read})"
            )
        case InstallSnapshot():
            meta = m.snapshot.meta
            voters = ",".join(peer_name(p) for p in sorted(meta.membership.voters))
            return f"InstallSnapshot(term={m.term}, last={meta.last_index}/{meta.last_term}, voters={voters})"
        case InstallSnapshotResponse():
            return f"InstallSnapshotResponse(term={m.term}, last={m.last_index})"
        case TimeoutNow():
            return f"TimeoutNow(term={m.term})"
        case _:
            assert_never(m)


def is_heartbeat(m: Message) -> bool:
    """Empty AppendEntries and successful responses to them (no new entries, no read)."""
    if isinstance(m, AppendEntries):
        return not m.entries and not m.read_ctx
    if isinstance(m, AppendEntriesResponse):
        return m.success and not m.read_ctx
    return False


@dataclass
class Transcript:
    """The lines of one run, filtered as configured."""

    messages: bool = True
    heartbeats: bool = False
    lines: list[str] = field(default_factory=list)
    enabled: bool = True

    def record(self, now: Tick, text: str) -> None:
        """Add a non-message event line."""
        if self.enabled:
            self.lines.append(f"t={now} {text}")

    def message(self, now: Tick, m: Message, note: str = "") -> None:
        """Add a message line (delivered, or with ``note`` e.g. ``dropped``)."""
        if not self.enabled or not self.messages:
            return
        if not self.heartbeats and is_heartbeat(m):
            return
        suffix = f" [{note}]" if note else ""
        self.lines.append(
            f"t={now} {peer_name(m.src)}→{peer_name(m.dst)} {format_message(m)}{suffix}"
        )

    def text(self) -> str:
        """All lines, newline-terminated."""
        return "".join(line + "\n" for line in self.lines)
