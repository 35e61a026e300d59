"""multipart/form-data parsed in memory (python-multipart), so no upload touches the disk before we choose where.

Starlette's own form parser spools large files to the system temporary directory; the server instead
reads the body under its size cap and writes parts only into a per-request
``tempfile.TemporaryDirectory`` (see :mod:`meit.serve.inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from meit.serve.problems import RequestProblem

#: more parts than any accepted request needs (hea + a few dat files + fields)
MAX_PARTS = 32


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    data: bytes

    def text(self, field: str) -> str:
        try:
            return self.data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise RequestProblem(field, "is not UTF-8 text", "a plain text form field") from None


class _Collector:
    """Callbacks of the streaming parser, gathering whole parts in memory."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.begin()

    def begin(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.field = b""
        self.value = b""
        self.chunks: list[bytes] = []

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def data(self, data: bytes, start: int, end: int) -> None:
        self.chunks.append(data[start:end])

    def end(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise RequestProblem("body", f"more than {MAX_PARTS} form parts", f"at most {MAX_PARTS}", 400)
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise RequestProblem("body", "a form part has no name", "Content-Disposition: form-data; name=…", 400)
        filename = options.get(b"filename")
        self.parts.append(Part(name.decode("utf-8", "replace"),
                               None if filename is None else filename.decode("utf-8", "replace"),
                               b"".join(self.chunks)))


def parse_form(body: bytes, content_type: str) -> dict[str, list[Part]]:
    """Parts by field name, in order; a malformed body is a 400 naming the problem."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise RequestProblem("Content-Type", f"{content_type!r} has no multipart boundary",
                             "multipart/form-data with a boundary", 400)
    collector = _Collector()
    parser = MultipartParser(boundary, {
        "on_part_begin": collector.begin, "on_header_field": collector.header_field,
        "on_header_value": collector.header_value, "on_header_end": collector.header_end,
        "on_part_data": collector.data, "on_part_end": collector.end,
    })
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as err:
        raise RequestProblem("body", f"malformed multipart body ({err})", "a well-formed multipart/form-data body",
                             400) from None
    fields: dict[str, list[Part]] = {}
    for part in collector.parts:
        fields.setdefault(part.name, []).append(part)
    return fields
