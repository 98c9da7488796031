"""The ``file`` part of a ``multipart/form-data`` import, streamed: the bytes of that part
come out as the request's body arrives, so a browser's or a generated client's upload is
read like a ``text/csv`` body, in constant memory (nothing is spooled to disk)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from discount_codes.problems import ValidationFailed

FILE_FIELD = "file"


def _refused(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, errors=[{"loc": ["body", FILE_FIELD], "msg": detail}])


class _FilePart:
    """Callbacks of the push parser: keep the data of the first part named ``file``."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.found = False
        self.done = False
        self._in_file = False
        self._field = b""
        self._value = b""
        self._disposition = b""

    def on_part_begin(self) -> None:
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._field.strip().lower() == b"content-disposition":
            self._disposition = self._value
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._in_file = not self.done and options.get(b"name") == FILE_FIELD.encode()
        self.found = self.found or self._in_file

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.out.append(data[start:end])

    def on_part_end(self) -> None:
        if self._in_file:
            self.done = True
        self._in_file = False


async def file_part(content_type: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The bytes of the ``file`` part, chunk by chunk; ``422`` when the body has none or is
    not multipart as its header says."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise _refused("A multipart/form-data body needs a boundary in its Content-Type.")
    part = _FilePart()
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": part.on_part_begin,
            "on_header_field": part.on_header_field,
            "on_header_value": part.on_header_value,
            "on_header_end": part.on_header_end,
            "on_headers_finished": part.on_headers_finished,
            "on_part_data": part.on_part_data,
            "on_part_end": part.on_part_end,
        },
    )
    try:
        async for chunk in chunks:
            parser.write(chunk)
            if part.out:
                data, part.out = b"".join(part.out), []
                yield data
        parser.finalize()
    except MultipartParseError:
        raise _refused(
            "The multipart/form-data body is malformed (cut short, or a boundary other than "
            "its Content-Type's)."
        ) from None
    if part.out:
        yield b"".join(part.out)
    if not part.found:
        raise _refused(f"Send the codes as a file in a form field named {FILE_FIELD!r}.")
    if not part.done:
        raise _refused("The multipart/form-data body ends inside the file (cut short).")
