"""Split a psql script (pg_dump's plain format) into statements, COPY blocks and meta-commands.

Streaming: the file is read line by line; a statement is held in memory only until its
terminating semicolon, and the data of a ``COPY … FROM stdin`` block is handed out as byte chunks
without being decoded or kept. Memory therefore depends on the largest statement, never on the
size of the file.

The lexer follows psql's rules (``psqlscan.l``) for what may contain a semicolon without ending
the statement: single-quoted strings (``E''`` strings with backslash escapes), double-quoted
identifiers, dollar quotes (``$$`` and ``$tag$``), ``--`` and nested ``/* */`` comments,
parentheses, and ``BEGIN ATOMIC … END`` bodies of ``CREATE FUNCTION/PROCEDURE``.
A backslash at the start of a statement begins a meta-command that runs to the end of the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ..errors import ArchiveError

# Batch COPY data lines into chunks of about this size before handing them out.
COPY_CHUNK_BYTES = 256 * 1024

_IDENT_START = r"A-Za-z_\x80-\U0010ffff"
_IDENT_CHAR = _IDENT_START + r"0-9$"
# One token of interest in normal (unquoted) text.
_NORMAL_TOKEN = re.compile(
    rf"""
      (?P<word>[{_IDENT_START}][{_IDENT_CHAR}]*)
    | (?P<squote>')
    | (?P<dquote>")
    | (?P<dollar>\$(?:[{_IDENT_START}][{_IDENT_START}0-9]*)?\$)
    | (?P<param>\$[0-9]+)
    | (?P<linecomment>--)
    | (?P<blockopen>/\*)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<semi>;)
    | (?P<backslash>\\)
    | (?P<number>[0-9][0-9A-Za-z_.]*)
    """,
    re.VERBOSE,
)
_SQUOTE_END_STD = re.compile(r"'")
_SQUOTE_END_ESC = re.compile(r"\\.|'", re.DOTALL)
_DQUOTE_END = re.compile(r'"')
_BLOCK_TOKEN = re.compile(r"/\*|\*/")


@dataclass(frozen=True)
class Statement:
    """One SQL statement, with the line (1-based) where its code starts."""

    text: str
    line: int
    words: tuple[str, ...] = field(repr=False)  # first upper-cased words, comments stripped

    def starts_with(self, *words: str) -> bool:
        return self.words[: len(words)] == words


@dataclass(frozen=True)
class MetaCommand:
    """A psql backslash command such as ``\\restrict KEY`` (``name`` without the backslash)."""

    name: str
    argument: str
    line: int


@dataclass
class CopyData:
    """A ``COPY … FROM stdin`` statement; ``chunks()`` yields its data lines (without ``\\.``)."""

    statement: Statement
    _splitter: ScriptSplitter = field(repr=False)
    consumed: bool = False
    size: int = 0

    def chunks(self) -> Iterator[bytes]:
        if self.consumed:
            return
        self.consumed = True
        for chunk in self._splitter._copy_chunks(self.statement.line):
            self.size += len(chunk)
            yield chunk


Item = Statement | MetaCommand | CopyData


class ScriptSplitter:
    """Iterate over a psql script's items. A ``CopyData`` must be drained (or it is skipped).

    ``bytes_read`` and ``line`` tell how far the reader got (for progress and messages).
    """

    def __init__(self, f: BinaryIO, *, standard_conforming_strings: bool = True) -> None:
        self._f = f
        self.line = 0
        self.bytes_read = 0
        self.standard_conforming_strings = standard_conforming_strings
        self._pending_copy: CopyData | None = None

    # -- reading -------------------------------------------------------------------------
    def _readline(self) -> bytes:
        raw = self._f.readline()
        if raw:
            self.line += 1
            self.bytes_read += len(raw)
        return raw

    def _copy_chunks(self, start_line: int) -> Iterator[bytes]:
        batch: list[bytes] = []
        size = 0
        while True:
            raw = self._readline()
            if not raw:
                raise ArchiveError(
                    f"The SQL file ends inside the COPY data that starts at line {start_line} "
                    "(no terminating '\\.' line): the file is truncated."
                )
            if raw in (b"\\.\n", b"\\.\r\n", b"\\."):
                break
            batch.append(raw)
            size += len(raw)
            if size >= COPY_CHUNK_BYTES:
                yield b"".join(batch)
                batch, size = [], 0
        if batch:
            yield b"".join(batch)

    # -- lexing --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Item]:
        buf: list[str] = []  # pieces of the current statement's text
        words: list[str] = []  # first few code words, upper-cased
        stmt_line = 0
        has_code = False
        state = "normal"  # normal | squote | dquote | dollar | block
        escape_string = False
        dollar_tag = ""
        block_depth = 0
        paren_depth = 0
        begin_depth = 0
        func_head: list[str] = []  # identifiers tracked for psql's BEGIN ATOMIC heuristic
        ident_count = 0

        while True:
            if self._pending_copy is not None:
                for _ in self._pending_copy.chunks():
                    pass
                self._pending_copy = None
            raw = self._readline()
            if not raw:
                break
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ArchiveError(
                    f"Line {self.line} of the SQL file is not valid UTF-8 (byte {exc.start + 1})."
                ) from exc
            pos = 0
            n = len(text)
            while pos < n:
                if state == "normal":
                    m = _NORMAL_TOKEN.search(text, pos)
                    if m is None:
                        chunk = text[pos:]
                        if chunk.strip() and not has_code:
                            has_code, stmt_line = True, self.line
                        if has_code:
                            buf.append(chunk)
                        pos = n
                        continue
                    gap = text[pos : m.start()]
                    if gap.strip() and not has_code:
                        has_code, stmt_line = True, self.line
                    if has_code:
                        buf.append(gap)
                    kind = m.lastgroup
                    tok = m.group()
                    pos = m.end()
                    if kind == "linecomment":
                        rest = text[m.start() :]
                        if has_code:
                            buf.append(rest)
                        pos = n
                        continue
                    if kind == "blockopen":
                        state, block_depth = "block", 1
                        if has_code:
                            buf.append(tok)
                        continue
                    if kind == "backslash" and not has_code:
                        cmd = text[m.end() :].rstrip("\r\n")
                        name, _, arg = cmd.partition(" ")
                        yield MetaCommand(name=name, argument=arg.strip(), line=self.line)
                        pos = n
                        continue
                    if not has_code:
                        has_code, stmt_line = True, self.line
                    if kind == "semi" and paren_depth == 0 and begin_depth == 0:
                        buf.append(tok)
                        stmt = Statement("".join(buf), stmt_line, tuple(words[:8]))
                        buf, words, has_code = [], [], False
                        paren_depth = begin_depth = ident_count = 0
                        func_head = []
                        if _is_copy_from_stdin(stmt):
                            copy = CopyData(stmt, self)
                            self._pending_copy = copy
                            yield copy
                            pos = n  # data starts on the next line
                        else:
                            yield stmt
                        continue
                    buf.append(tok)
                    if kind == "word":
                        upper = tok.upper()
                        if len(words) < 8:
                            words.append(upper)
                        if upper == "E" and pos < n and text[pos] == "'":
                            buf.append("'")
                            pos += 1
                            state, escape_string = "squote", True
                            continue
                        ident_count, func_head = _track_function_head(
                            upper, ident_count, func_head
                        )
                        if _in_function_head(func_head) and paren_depth == 0:
                            if upper == "BEGIN":
                                begin_depth += 1
                            elif upper == "CASE" and begin_depth >= 1:
                                begin_depth += 1
                            elif upper == "END" and begin_depth > 0:
                                begin_depth -= 1
                    elif kind == "squote":
                        state = "squote"
                        escape_string = not self.standard_conforming_strings
                    elif kind == "dquote":
                        state = "dquote"
                    elif kind == "dollar":
                        prev = text[m.start() - 1] if m.start() > 0 else ""
                        if prev and (prev.isalnum() or prev in "_$"):
                            # part of an identifier such as a$b$: not a dollar quote
                            pos = m.start() + 1
                            buf[-1] = "$"
                        else:
                            state, dollar_tag = "dollar", tok
                    elif kind == "open":
                        paren_depth += 1
                    elif kind == "close":
                        paren_depth = max(0, paren_depth - 1)
                    elif len(words) < 8 and kind != "backslash":
                        words.append(tok)
                elif state == "squote":
                    pattern = _SQUOTE_END_ESC if escape_string else _SQUOTE_END_STD
                    while True:
                        m = pattern.search(text, pos)
                        if m is None:
                            buf.append(text[pos:])
                            pos = n
                            break
                        if m.group() != "'":  # a backslash escape: skip it
                            buf.append(text[pos : m.end()])
                            pos = m.end()
                            continue
                        if m.end() < n and text[m.end()] == "'":  # doubled quote
                            buf.append(text[pos : m.end() + 1])
                            pos = m.end() + 1
                            continue
                        buf.append(text[pos : m.end()])
                        pos = m.end()
                        state = "normal"
                        break
                elif state == "dquote":
                    m = _DQUOTE_END.search(text, pos)
                    if m is None:
                        buf.append(text[pos:])
                        pos = n
                    else:
                        buf.append(text[pos : m.end()])
                        pos = m.end()
                        state = "normal"  # a doubled "" reopens at once: harmless
                elif state == "dollar":
                    idx = text.find(dollar_tag, pos)
                    if idx < 0:
                        buf.append(text[pos:])
                        pos = n
                    else:
                        end = idx + len(dollar_tag)
                        buf.append(text[pos:end])
                        pos = end
                        state = "normal"
                else:  # block comment, nested
                    m = _BLOCK_TOKEN.search(text, pos)
                    if m is None:
                        if has_code:
                            buf.append(text[pos:])
                        pos = n
                        continue
                    if has_code:
                        buf.append(text[pos : m.end()])
                    pos = m.end()
                    block_depth += 1 if m.group() == "/*" else -1
                    if block_depth == 0:
                        state = "normal"

        if state != "normal" and state != "block":
            what = {
                "squote": "a quoted string",
                "dquote": "a quoted identifier",
                "dollar": f"a {dollar_tag} quoted body",
            }[state]
            raise ArchiveError(
                f"The SQL file ends inside {what} (statement starting at line {stmt_line}): "
                "the file is truncated."
            )
        if has_code and "".join(buf).strip():
            raise ArchiveError(
                f"The SQL file ends with an unterminated statement starting at line {stmt_line} "
                "(no semicolon): the file is truncated."
            )


def _track_function_head(word: str, count: int, head: list[str]) -> tuple[int, list[str]]:
    if count < 4 and word in ("CREATE", "FUNCTION", "PROCEDURE", "OR", "REPLACE"):
        head = [*head, word]
    elif count < 4:
        head = [*head, ""]
    return count + 1, head


def _in_function_head(head: list[str]) -> bool:
    if len(head) >= 2 and head[0] == "CREATE" and head[1] in ("FUNCTION", "PROCEDURE"):
        return True
    return (
        len(head) >= 4
        and head[:3] == ["CREATE", "OR", "REPLACE"]
        and head[3] in ("FUNCTION", "PROCEDURE")
    )


_COPY_FROM_STDIN = re.compile(r"\bFROM\s+STDIN\b", re.IGNORECASE)


def _is_copy_from_stdin(stmt: Statement) -> bool:
    return stmt.starts_with("COPY") and bool(_COPY_FROM_STDIN.search(stmt.text))
