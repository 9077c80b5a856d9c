"""The one error the points layer raises for bad input: :class:`BadRequest`.

Rule: every request that comes from outside is checked before anything is written, and a
failure raises :class:`BadRequest` whose message is the exact text the REST layer puts in
Qdrant's error envelope (``{"status": {"error": "<message>"}}``, HTTP 400). The message says
what was wrong and what to send instead, in Qdrant's wording where Qdrant has one:

* ``Wrong input: …`` for values that parse but cannot be used (a vector of the wrong
  dimension, a NaN component);
* ``Json deserialize error: …`` for a body of the wrong shape (an unknown field, a string
  where a number belongs, a malformed point id);
* ``Validation error in JSON body: …`` for numbers out of their range (a zero limit).
"""


class BadRequest(ValueError):  # noqa: N818 (the name the API layer uses)
    """Bad input from a client; ``str(error)`` is the full message for the error envelope."""

    status_code = 400
    """The HTTP status the REST layer answers with."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def wrong_input(detail: str) -> BadRequest:
    """A :class:`BadRequest` with Qdrant's ``Wrong input:`` prefix."""
    return BadRequest(f"Wrong input: {detail}")


def deserialize_error(detail: str) -> BadRequest:
    """A :class:`BadRequest` for a body of the wrong shape."""
    return BadRequest(f"Json deserialize error: {detail}")


def validation_error(detail: str) -> BadRequest:
    """A :class:`BadRequest` for a value outside its allowed range."""
    return BadRequest(f"Validation error in JSON body: [{detail}]")


class PointNotFound(BadRequest):
    """A request names a point that does not exist where it must (``query`` by point id)."""

    status_code = 404


def point_not_found(point_id: object) -> PointNotFound:
    """Qdrant's ``Not found: No point with id … found``."""
    return PointNotFound(f"Not found: No point with id {point_id} found")
