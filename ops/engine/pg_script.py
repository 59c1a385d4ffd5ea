"""pg_restore's SQL made runnable inside OUR transaction, and the roles it names.

pg_restore writes a psql script: a ``\\restrict KEY`` meta-command, session settings,
``BEGIN;`` … ``COMMIT;`` (with ``--single-transaction``) and ``\\unrestrict KEY``. We run it
through asyncpg inside the restore's one transaction, so the framing goes (a ``COMMIT;`` of its
own would end our transaction half way), and so do the settings that would undo ours (timeouts)
or that the target may not know (``transaction_timeout`` before PostgreSQL 17). Only the
prelude is touched: the entries' own text is passed on byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import RestoreRefused

# PostgreSQL encoding names -> Python codecs, for a database whose encoding is not UTF8
# (pg_restore writes the script in the dump's encoding; asyncpg always speaks UTF-8).
_CODECS = {
    "UTF8": "utf-8", "SQL_ASCII": "utf-8", "LATIN1": "latin-1", "LATIN2": "iso8859-2",
    "LATIN3": "iso8859-3", "LATIN4": "iso8859-4", "LATIN5": "iso8859-9", "LATIN6": "iso8859-10",
    "LATIN7": "iso8859-13", "LATIN8": "iso8859-14", "LATIN9": "iso8859-15",
    "LATIN10": "iso8859-16", "WIN1250": "cp1250", "WIN1251": "cp1251", "WIN1252": "cp1252",
    "WIN1253": "cp1253", "WIN1254": "cp1254", "WIN1255": "cp1255", "WIN1256": "cp1256",
    "WIN1257": "cp1257", "WIN1258": "cp1258", "KOI8R": "koi8-r", "KOI8U": "koi8-u",
    "ISO_8859_5": "iso8859-5", "ISO_8859_6": "iso8859-6", "ISO_8859_7": "iso8859-7",
    "ISO_8859_8": "iso8859-8", "EUC_JP": "euc-jp", "EUC_KR": "euc-kr", "EUC_CN": "gb2312",
    "SJIS": "shift-jis", "BIG5": "big5", "GBK": "gbk", "UHC": "cp949", "GB18030": "gb18030",
    "WIN866": "cp866", "WIN874": "cp874",
}
_ENCODING = re.compile(rb"^SET client_encoding = '([A-Za-z0-9_]+)';$", re.M)
# Settings of pg_restore's prelude that we own inside the restore's transaction.
_DROPPED_SETTINGS = re.compile(
    r"SET (statement_timeout|lock_timeout|idle_in_transaction_session_timeout|"
    r"transaction_timeout|client_encoding) = .*;"
)
_PRELUDE_LINE = re.compile(r"(|--.*|BEGIN;|SET [a-z_]+ = .*;|SELECT pg_catalog\.set_config\(.*\);)")
_RESTRICT = re.compile(r"\\restrict ([A-Za-z0-9]+)")


# pg_dump 18 writes ``run_as_owner`` (PostgreSQL 16+) into every CREATE SUBSCRIPTION it dumps,
# even from an older server, where a subscription has no such option; an older target refuses
# the word. PostgreSQL 15's own pg_dump writes the statement without it, which is what we match.
_RUN_AS_OWNER = re.compile(r", run_as_owner = (?:true|false)(?=[,)])")


def runnable_script(raw: bytes, target_version: int = 999999) -> str:
    """pg_restore's ``--single-transaction`` script without its framing (see module doc),
    for a server of ``target_version`` (server_version_num)."""
    m = _ENCODING.search(raw[:8192])
    encoding = m.group(1).decode() if m else "UTF8"
    codec = _CODECS.get(encoding.upper())
    if codec is None:
        raise RestoreRefused(
            f"The backup's schema is written in encoding {encoding}, which this tool cannot "
            "convert; restore it with pg_restore."
        )
    lines = raw.decode(codec).split("\n")
    key = None
    out: list[str] = []
    in_prelude = True
    began = False
    for line in lines:
        if in_prelude:
            r = _RESTRICT.fullmatch(line)
            if r and key is None:
                key = r.group(1)
                continue
            if _PRELUDE_LINE.fullmatch(line):
                if line == "BEGIN;" and not began:
                    began = True
                    continue
                if _DROPPED_SETTINGS.fullmatch(line):
                    continue
                out.append(line)
                continue
            in_prelude = False
        if target_version < 160000 and line.startswith("CREATE SUBSCRIPTION "):
            line = _RUN_AS_OWNER.sub("", line)
        out.append(line)
    if not began:
        raise RestoreRefused("pg_restore's script does not start a transaction; nothing was run.")
    # The end: "COMMIT;", pg_dump's closing comment and "\unrestrict KEY".
    while out and (not out[-1].strip() or out[-1].startswith("--")
                   or (key is not None and out[-1] == f"\\unrestrict {key}")):
        out.pop()
    if not out or out[-1] != "COMMIT;":
        raise RestoreRefused("pg_restore's script does not end its transaction; nothing was run.")
    out.pop()
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class RolesNamed:
    """Roles a script makes owners (``OWNER TO``, ``SET SESSION AUTHORIZATION``) and roles it
    grants to or revokes from (``GRANT … TO``, ``REVOKE … FROM``, ``FOR ROLE``)."""

    owners: frozenset[str]
    grantees: frozenset[str]


_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_OWNER = re.compile(rf"\bOWNER TO ({_IDENT});$")
_SESSION = re.compile(rf"^SET SESSION AUTHORIZATION ({_IDENT});$")
_FOR_ROLE = re.compile(rf"^ALTER DEFAULT PRIVILEGES FOR ROLE ({_IDENT})\b")
_ACL = re.compile(r"^(GRANT|REVOKE) ")
_KEYWORDS = {"PUBLIC", "CURRENT_USER", "SESSION_USER", "CURRENT_ROLE"}


def _unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, quoted, start = [], False, 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            quoted = not quoted
        elif not quoted and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return parts


def roles_named(script: str) -> RolesNamed:
    """The roles ``script`` needs on the target (see RolesNamed). pg_dump writes each of these
    statements on one line with identifiers quoted by fmtId, which is what this reads."""
    owners: set[str] = set()
    grantees: set[str] = set()
    for line in script.splitlines():
        if m := _OWNER.search(line):
            owners.add(_unquote(m.group(1)))
        elif m := _SESSION.match(line):
            owners.add(_unquote(m.group(1)))
        elif m := _FOR_ROLE.match(line):
            grantees.add(_unquote(m.group(1)))
        if _ACL.match(line) and line.endswith(";"):
            body = line[:-1].removesuffix(" WITH GRANT OPTION").removesuffix(" CASCADE")
            word = " TO " if line.startswith("GRANT") else " FROM "
            pieces = _split_outside_quotes(body, word)
            if len(pieces) < 2:
                continue
            for who in _split_outside_quotes(pieces[-1], ","):
                who = who.strip()
                if who and who.upper() not in _KEYWORDS and re.fullmatch(_IDENT, who):
                    grantees.add(_unquote(who))
    return RolesNamed(frozenset(owners), frozenset(grantees))
