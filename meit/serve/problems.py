"""The one error type a request can meet: an HTTP status, the field at fault, what was wrong, what was expected.

Handlers raise :class:`RequestProblem`; the app turns it into ``{"error": {...}}`` with its status, so a
client (or the web page) can point at the exact form field or JSON key.
"""

from __future__ import annotations

from typing import Any

from meit.errors import DataError


class RequestProblem(DataError):
    """A request the server refuses (4xx)."""

    def __init__(self, field: str, message: str, expected: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}; expected {expected}")
        self.field = field
        self.message = message
        self.expected = expected
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"error": {"field": self.field, "message": self.message, "expected": self.expected,
                          "status": self.status}}
