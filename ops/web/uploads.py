"""A multipart upload streamed straight into the private work dir (flat memory, 0600 file).

Starlette's own form parser spools files to anonymous temporary files of its own; this one
writes the single file part where the restore will read it, and checks the form's CSRF token
before the first byte of the file is written (the page puts the token field first).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import UsageError

MAX_FIELD_BYTES = 4096  # a form field's value, and one part header
MAX_PARTS = 20  # the page's upload form has two; anything far beyond is an attack on memory
MALFORMED = ("The upload is not a well-formed form (multipart/form-data); nothing was "
             "changed. Send it again from the page.")


class CsrfRejected(Exception):
    """The upload's form carried no valid CSRF token before its file."""


@dataclass
class Upload:
    path: Path | None = None  # the file as stored (its directory is the upload's own)
    filename: str = ""  # as the browser named it (for display only)
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


class _UploadParser:
    """python-multipart callbacks: small fields into memory, the one file part onto disk."""

    def __init__(self, file_field: str, new_file: Callable[[str], Path],
                 csrf_ok: Callable[[str | None], bool], max_bytes: int | None) -> None:
        self.file_field = file_field
        self.new_file = new_file
        self.csrf_ok = csrf_ok
        self.max_bytes = max_bytes
        self.upload = Upload()
        self.fd: int | None = None
        self._name = ""
        self._filename: str | None = None
        self._header = b""
        self._value = b""
        self._buf = bytearray()
        self.parts = 0
        self.ended = False  # the closing boundary arrived

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished, "on_end": self.on_end}

    @property
    def _in_file(self) -> bool:
        return self._filename is not None and self._name == self.file_field

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UsageError(f"The form has more than {MAX_PARTS} fields; nothing was changed.")
        self._name, self._filename = "", None
        self._buf.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]
        self._check_header()

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self._header) + len(self._value) > MAX_FIELD_BYTES:
            raise UsageError("A header of the form is too long; nothing was changed.")

    def on_end(self) -> None:
        self.ended = True

    def on_header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            _disposition, opts = parse_options_header(self._value)
            self._name = opts.get(b"name", b"").decode("utf-8", "replace")
            if b"filename" in opts:
                self._filename = opts[b"filename"].decode("utf-8", "replace")
        self._header = self._value = b""

    def on_headers_finished(self) -> None:
        if not self._in_file:
            return
        if self.upload.path is not None:
            raise UsageError("Send one backup file at a time.")
        if not self.csrf_ok(self.upload.fields.get("csrf_token")):
            raise CsrfRejected
        self.upload.filename = self._filename or ""
        self.upload.path = self.new_file(self.upload.filename or "upload")
        self.fd = os.open(self.upload.path, os.O_WRONLY | os.O_CLOEXEC)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file and self.fd is not None:
            chunk = memoryview(data)[start:end]
            self.upload.size += len(chunk)
            if self.max_bytes is not None and self.upload.size > self.max_bytes:
                raise UsageError(f"The file is larger than the {self.max_bytes} bytes allowed.")
            while chunk:
                chunk = chunk[os.write(self.fd, chunk):]
        elif self._filename is None:
            if len(self._buf) + (end - start) > MAX_FIELD_BYTES:
                raise UsageError("A form field is too long.")
            self._buf.extend(data[start:end])

    def on_part_end(self) -> None:
        if self._filename is None and self._name:
            self.upload.fields[self._name] = self._buf.decode("utf-8", "replace")
        elif self._in_file and self.fd is not None:
            os.fsync(self.fd)
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


async def receive_upload(
    content_type: str | None,
    stream: AsyncIterator[bytes],
    *,
    file_field: str,
    new_file: Callable[[str], Path],
    discard: Callable[[Path], None],
    csrf_ok: Callable[[str | None], bool],
    max_bytes: int | None = None,
) -> Upload:
    """Parse the request body into an ``Upload``. The caller discards ``upload.path`` when
    done; on any error what was written so far is discarded here."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UsageError("The upload must be sent as a form (multipart/form-data).")
    handler = _UploadParser(file_field, new_file, csrf_ok, max_bytes)
    parser = MultipartParser(params[b"boundary"], handler.callbacks())  # type: ignore[arg-type]
    try:
        try:
            async for chunk in stream:
                parser.write(chunk)
            parser.finalize()
        except FormParserError as exc:
            raise UsageError(MALFORMED) from exc
        if not handler.ended:
            raise UsageError("The upload ended before the end of its form (the connection "
                             "was cut?); nothing was changed. Send it again.")
    except BaseException:
        handler.close()
        if handler.upload.path is not None:
            discard(handler.upload.path)
        raise
    finally:
        handler.close()
    return handler.upload
