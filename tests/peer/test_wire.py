"""Frame bodies: every Raft message survives the JSON encoding; garbage only raises WireError."""

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.peer.wire import (
    WireError,
    decode_message,
    decode_object,
    encode_message,
    encode_object,
)
from refimpl.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    InstallSnapshot,
    InstallSnapshotResponse,
    Membership,
    Message,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
)

ids = st.integers(min_value=1, max_value=2**53 - 1).map(PeerId)
terms = st.integers(min_value=0, max_value=2**40).map(Term)
indexes = st.integers(min_value=0, max_value=2**40).map(LogIndex)
entries = st.builds(Entry, terms, indexes, st.sampled_from(list(EntryKind)), st.binary(max_size=40))
memberships = st.builds(
    lambda v, extra: Membership(frozenset(v), frozenset(extra) - frozenset(v)),
    st.frozensets(ids, max_size=4),
    st.frozensets(ids, max_size=3),
)
snapshots = st.builds(
    Snapshot, st.builds(SnapshotMeta, indexes, terms, memberships), st.binary(max_size=60)
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(RequestVote, terms, ids, ids, indexes, terms, st.booleans(), st.booleans()),
    st.builds(RequestVoteResponse, terms, ids, ids, st.booleans(), st.booleans()),
    st.builds(
        AppendEntries,
        terms,
        ids,
        ids,
        indexes,
        terms,
        st.lists(entries, max_size=4).map(tuple),
        indexes,
        st.integers(0, 2**31),
    ),
    st.builds(
        AppendEntriesResponse,
        terms,
        ids,
        ids,
        st.booleans(),
        indexes,
        indexes,
        terms,
        st.integers(0, 2**31),
    ),
    st.builds(InstallSnapshot, terms, ids, ids, snapshots),
    st.builds(InstallSnapshotResponse, terms, ids, ids, indexes),
    st.builds(TimeoutNow, terms, ids, ids),
)


@given(messages)
def test_every_message_round_trips(message: Message) -> None:
    """decode(encode(m)) == m for every Raft message type, including entries and snapshots."""
    assert decode_message(encode_message(message)) == message


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_wire_error(body: bytes) -> None:
    """A body that is not a message is refused with WireError, never another exception."""
    with contextlib.suppress(WireError):
        decode_message(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(messages, st.sampled_from(["type", "fields"]), json_values)
def test_valid_json_with_wrong_shapes_raises_only_wire_error(
    message: Message, key: str, value: object
) -> None:
    """Replacing any part of a valid body with arbitrary JSON gives a message or WireError."""
    import json

    body = json.loads(encode_message(message))
    if key == "fields" and isinstance(value, dict) and body["fields"]:
        field = sorted(body["fields"])[0]
        body["fields"][field] = value
    else:
        body[key] = value
    with contextlib.suppress(WireError):
        decode_message(json.dumps(body).encode())


def test_objects_must_be_json_objects() -> None:
    """REQUEST bodies are JSON objects; a list or invalid UTF-8 is a WireError."""
    assert decode_object(b'{"kind": "join"}') == {"kind": "join"}
    for bad in (b"[1]", b"\xff", b"{"):
        try:
            decode_object(bad)
        except WireError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_objects_decode_to_what_they_were(obj: dict[str, object]) -> None:
    """decode_object(encode_object(o)) == o, big integers included (beyond 64 bits they must
    stay ints: a u64 point id or a payload number is not rounded through a float)."""
    assert decode_object(encode_object(obj)) == obj
    wide = {"id": 2**64 - 1, "n": -(2**63) - 1, "big": 10**30, "f": 0.0010487965773791075}
    back = decode_object(encode_object({**obj, "_": wide}))["_"]
    assert back == wide
    assert [type(v) for v in back.values()] == [int, int, int, float]


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_wire_error_from_decode_object(body: bytes) -> None:
    """The object decoder (orjson with the standard library behind it) refuses garbage with
    WireError only."""
    with contextlib.suppress(WireError):
        assert isinstance(decode_object(body), dict)


def test_an_integer_too_long_to_convert_is_a_wire_error() -> None:
    """``json.loads`` raises a bare ValueError on an integer of over 4300 digits; from a peer's
    bytes that must be a WireError (the connection is closed), never an escaping exception."""
    for body in (
        b'{"kind": ' + b"9" * 5000 + b"}",
        b'{"type": "X", "fields": [' + b"1" * 4301 + b"]}",
    ):
        try:
            decode_object(body)
        except WireError as exc:
            assert "digits" in str(exc)
        else:
            raise AssertionError("accepted")
        try:
            decode_message(body)
        except WireError:
            continue
        raise AssertionError("accepted")
