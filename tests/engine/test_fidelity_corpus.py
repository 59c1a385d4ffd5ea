"""The fidelity corpus (tests/fixtures/fidelity): what `pg_dump | pg_restore` reproduces,
`mmops backup` + `mmops restore` reproduces — compared object by object as pg_dump sees them
(owners and privileges included), every table's rows, every sequence and large object.

Pairings: 15→15, 18→18, 15→18, 16→16 and 16→18 (16 is the pgserver wheel, the third major).
Each server loads the corpus once per session; each pairing's reference restore is made once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ops.dburl import DbUrl
from ops.errors import RestoreRefused
from ops.sandbox.postgres import PostgresServer
from tests.cli_helpers import mmops
from tests.fidelity import (
    OursFailed,
    compare_databases,
    data_digest,
    fetch,
    load_corpus,
    mmops_round_trip,
    reference_restore,
)

pytestmark = pytest.mark.postgres

FIXTURES = {"15": "pg15", "16": "pg16", "18": "pg18"}
PAIRINGS = [("15", "15"), ("18", "18"), ("15", "18"), ("16", "16"), ("16", "18")]
# Across majors the target server deparses view and rule bodies its own way (pg_restore's output
# too); every other difference between the source and the reference counts.
DEPARSED_TYPES = ("differs: VIEW ", "differs: MATERIALIZED VIEW ", "differs: RULE ")


def _pairing(src: str, dst: str) -> object:
    marks = [getattr(pytest.mark, FIXTURES[t]) for t in {src, dst} if t != "15"]
    return pytest.param(src, dst, id=f"{src}to{dst}", marks=marks)


PAIRING_PARAMS = [_pairing(s, d) for s, d in PAIRINGS]


class Corpus:
    """Session cache: one corpus source per server, one reference and one `ours` restore per
    pairing; every database it made is dropped at the end of the session."""

    def __init__(self, request: pytest.FixtureRequest, workdir: Path) -> None:
        self._request = request
        self._workdir = workdir
        self._names = itertools.count()
        self._made: list[tuple[PostgresServer, str]] = []
        self._sources: dict[str, DbUrl] = {}
        self._references: dict[tuple[str, str], DbUrl] = {}
        self._ours: dict[tuple[str, str], tuple[DbUrl, OursFailed | None]] = {}

    def server(self, tag: str) -> PostgresServer:
        server: PostgresServer = self._request.getfixturevalue(FIXTURES[tag])
        return server

    def fresh(self, tag: str, purpose: str) -> DbUrl:
        server = self.server(tag)
        name = f"fid_{purpose}_{os.getpid()}_{next(self._names)}"
        self._made.append((server, name))
        return server.createdb(name)

    def source(self, tag: str) -> DbUrl:
        if tag not in self._sources:
            url = self.fresh(tag, f"src{tag}")
            load_corpus(self.server(tag), url.database)
            self._sources[tag] = url
        return self._sources[tag]

    def reference(self, src: str, dst: str) -> DbUrl:
        if (src, dst) not in self._references:
            target = self.fresh(dst, f"ref{src}")
            reference_restore(self.source(src), target, self._workdir, self.server(dst).bindir)
            self._references[src, dst] = target
        return self._references[src, dst]

    def ours(self, src: str, dst: str) -> tuple[DbUrl, OursFailed | None]:
        if (src, dst) not in self._ours:
            target = self.fresh(dst, f"ours{src}")
            try:
                mmops_round_trip(self.source(src), target)
                failure = None
            except OursFailed as exc:
                failure = exc
            self._ours[src, dst] = (target, failure)
        return self._ours[src, dst]

    def drop_all(self) -> None:
        for server, name in reversed(self._made):
            # A server asked for after this fixture started (getfixturevalue) is stopped before
            # it ends, and its databases went with it.
            if (server.datadir / "postmaster.pid").exists():
                server.dropdb(name)


@pytest.fixture(scope="session")
def corpus(request: pytest.FixtureRequest) -> Iterator[Corpus]:
    workdir = Path(tempfile.mkdtemp(prefix="mmops-fidelity-"))
    cache = Corpus(request, workdir)
    try:
        yield cache
    finally:
        cache.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def _report(diffs: list[str], limit: int = 40) -> str:
    more = f"\n… and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return f"{len(diffs)} differences:\n" + "\n".join(diffs[:limit]) + more


# ---- the corpus itself -------------------------------------------------------------------------

# One catalog count per object kind the corpus must hold (in the corpus database, excluding what
# initdb or an extension made); kinds only 16+/18 have are checked where they exist.
KINDS = {
    "base type": "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                 "WHERE n.nspname = 'fid' AND t.typtype = 'b' AND t.typisdefined",
    "shell type": "SELECT count(*) FROM pg_type WHERE typtype = 'p' AND NOT typisdefined "
                  "AND typnamespace = 'fid'::regnamespace",
    "enum": "SELECT count(*) FROM pg_type WHERE typtype = 'e' "
            "AND typnamespace = 'fid'::regnamespace",
    "composite type": "SELECT count(*) FROM pg_class WHERE relkind = 'c' "
                      "AND relnamespace = 'fid'::regnamespace",
    "range": "SELECT count(*) FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid "
             "WHERE t.typnamespace = 'fid'::regnamespace",
    "multirange": "SELECT count(*) FROM pg_type WHERE typtype = 'm' "
                  "AND typnamespace = 'fid'::regnamespace",
    "domain with constraints": "SELECT count(*) FROM pg_constraint c JOIN pg_type t "
                               "ON t.oid = c.contypid WHERE t.typnamespace = 'fid'::regnamespace",
    "collation": "SELECT count(*) FROM pg_collation WHERE collnamespace = 'fid'::regnamespace",
    "conversion": "SELECT count(*) FROM pg_conversion WHERE connamespace = 'fid'::regnamespace",
    "text search parser": "SELECT count(*) FROM pg_ts_parser "
                          "WHERE prsnamespace = 'fid'::regnamespace",
    "text search template": "SELECT count(*) FROM pg_ts_template "
                            "WHERE tmplnamespace = 'fid'::regnamespace",
    "text search dictionary": "SELECT count(*) FROM pg_ts_dict "
                              "WHERE dictnamespace = 'fid'::regnamespace",
    "text search configuration": "SELECT count(*) FROM pg_ts_config "
                                 "WHERE cfgnamespace = 'fid'::regnamespace",
    "operator": "SELECT count(*) FROM pg_operator WHERE oprnamespace = 'fid'::regnamespace",
    "operator class": "SELECT count(*) FROM pg_opclass WHERE opcnamespace = 'fid'::regnamespace",
    "operator family": "SELECT count(*) FROM pg_opfamily WHERE opfnamespace = 'fid'::regnamespace",
    "cast": "SELECT count(*) FROM pg_cast WHERE oid >= 16384",
    "transform": "SELECT count(*) FROM pg_transform",
    "procedural language": "SELECT count(*) FROM pg_language WHERE lanname = 'pltestlang'",
    "foreign-data wrapper": "SELECT count(*) FROM pg_foreign_data_wrapper",
    "foreign server": "SELECT count(*) FROM pg_foreign_server",
    "user mapping": "SELECT count(*) FROM pg_user_mapping",
    "foreign table": "SELECT count(*) FROM pg_foreign_table",
    "publication": "SELECT count(*) FROM pg_publication",
    "subscription": "SELECT count(*) FROM pg_subscription "
                    "WHERE subdbid = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())",
    "event trigger": "SELECT count(*) FROM pg_event_trigger",
    "index access method": "SELECT count(*) FROM pg_am WHERE amname = 'gist2'",
    "table access method": "SELECT count(*) FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
                           "WHERE a.amname = 'fid_table_am'",
    "aggregate with FINALFUNC_MODIFY": "SELECT count(*) FROM pg_aggregate "
                                       "WHERE aggfinalmodify = 's'",
    "view column default": "SELECT count(*) FROM pg_rewrite r JOIN pg_attrdef d "
                           "ON d.adrelid = r.ev_class",
    "BEGIN ATOMIC function": "SELECT count(*) FROM pg_proc WHERE prosqlbody IS NOT NULL",
    "partition trigger in each enabled state": "SELECT count(DISTINCT tgenabled) FROM pg_trigger "
                                               "WHERE tgname = 'test_trigger' AND tgparentid <> 0",
    "column statistics target": "SELECT count(*) FROM pg_attribute WHERE attstattarget > 0 "
                                "AND attrelid = 'fid.test_table'::regclass",
    "column n_distinct": "SELECT count(*) FROM pg_attribute WHERE attoptions IS NOT NULL "
                         "AND attrelid = 'fid.test_table'::regclass",
    "column compression": "SELECT count(*) FROM pg_attribute WHERE attcompression <> '' "
                          "AND attrelid = 'fid.test_table'::regclass",
    "index column statistics": "SELECT count(*) FROM pg_attribute WHERE attstattarget > 0 "
                               "AND attrelid = 'fid.index_with_stats'::regclass",
    "extended statistics": "SELECT count(*) FROM pg_statistic_ext "
                           "WHERE stxnamespace = 'fid'::regnamespace",
    "RLS policy": "SELECT count(*) FROM pg_policy",
    "rule": "SELECT count(*) FROM pg_rewrite WHERE rulename <> '_RETURN' AND ev_class >= 16384",
    "trigger": "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal",
    "comment": "SELECT count(*) FROM pg_description WHERE objoid >= 16384",
    "large object with ACL": "SELECT count(*) FROM pg_largeobject_metadata "
                             "WHERE lomacl IS NOT NULL",
    "identity column": "SELECT count(*) FROM pg_attribute WHERE attidentity <> '' "
                       "AND attrelid >= 16384",
    "owned sequence": "SELECT count(*) FROM pg_depend WHERE classid = 'pg_class'::regclass "
                      "AND refclassid = 'pg_class'::regclass AND deptype IN ('a', 'i') "
                      "AND objid IN (SELECT oid FROM pg_class WHERE relkind = 'S')",
    "default privileges": "SELECT count(*) FROM pg_default_acl",
    "column grant": "SELECT count(*) FROM pg_attribute WHERE attacl IS NOT NULL "
                    "AND attrelid >= 16384",
    "owner other than the superuser": "SELECT count(DISTINCT c.relowner) FROM pg_class c "
                                      "WHERE c.relnamespace = 'fid'::regnamespace "
                                      "AND c.relowner <> 10",
    "inheritance": "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                   "WHERE NOT c.relispartition",
    "partition": "SELECT count(*) FROM pg_class WHERE relispartition",
    "materialized view": "SELECT count(*) FROM pg_class WHERE relkind = 'm'",
}
KINDS_18 = {
    "NOT NULL NO INHERIT": "SELECT count(*) FROM pg_constraint WHERE contype = 'n' "
                           "AND connoinherit",
    "NOT NULL NOT VALID": "SELECT count(*) FROM pg_constraint WHERE contype = 'n' "
                          "AND NOT convalidated",
    "virtual generated column": "SELECT count(*) FROM pg_attribute WHERE attgenerated = 'v'",
}


@pytest.mark.parametrize(
    "tag", [pytest.param("15", id="15"), pytest.param("16", id="16", marks=pytest.mark.pg16),
            pytest.param("18", id="18", marks=pytest.mark.pg18)])
def test_the_corpus_holds_every_object_kind_and_rows(corpus: Corpus, tag: str) -> None:
    url = corpus.source(tag)
    kinds = KINDS | (KINDS_18 if tag == "18" else {})
    empty = [kind for kind, sql in kinds.items() if fetch(url, sql)[0][0] == 0]
    assert not empty, f"the corpus on PostgreSQL {tag} holds no {', '.join(empty)}"
    digest = data_digest(url)
    assert sum(int(v.split(":")[0]) for k, v in digest.items() if k.startswith("table ")) > 100
    assert digest['table "fid"."Awkward Values"'].startswith("2:")


# ---- the reference itself reproduces the corpus ------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), PAIRING_PARAMS)
def test_pg_dump_pg_restore_reproduces_the_corpus(corpus: Corpus, src: str, dst: str) -> None:
    """Sanity: the reference is a faithful copy of the source (same major: identical as pg_dump
    sees it; into a newer major: the same objects, owners, grants and rows — only view and rule
    bodies are deparsed by the newer server)."""
    diffs = compare_databases(corpus.source(src), corpus.reference(src, dst))
    if src != dst:
        diffs = [d for d in diffs if not d.startswith(DEPARSED_TYPES)]
    assert not diffs, _report(diffs)


# ---- ours against the reference ----------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), PAIRING_PARAMS)
def test_mmops_backup_and_restore_match_pg_restore(corpus: Corpus, src: str, dst: str) -> None:
    reference = corpus.reference(src, dst)
    ours, failure = corpus.ours(src, dst)
    diffs = [f"{failure}"] if failure else []
    diffs += compare_databases(reference, ours)
    assert not diffs, _report(diffs)


def test_owners_and_grants_round_trip_and_the_app_role_works(corpus: Corpus) -> None:
    """The migration role owns the schema, the app role works through grants, column grants,
    default privileges, EXECUTE and sequence USAGE: all of it back after `mmops restore`."""
    ours, failure = corpus.ours("15", "15")
    assert failure is None, str(failure)
    owners = {r["relname"]: r["owner"] for r in fetch(
        ours, "SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class "
              "WHERE relnamespace = 'fid'::regnamespace")}
    assert owners["test_table"] == "mmops_fid_owner"
    assert owners["Awkward Values"] == "mmops_fid_app"
    assert owners["owned_by_migration"] == "mmops_fid_owner"
    checks = fetch(ours, """
        SELECT pg_get_userbyid(nspowner) = 'mmops_fid_owner' AS schema_owner,
               has_column_privilege('mmops_fid_app', 'fid.test_second_table', 'col1', 'INSERT')
                   AS column_insert,
               NOT has_column_privilege('mmops_fid_app', 'fid.test_second_table', 'col2',
                                        'INSERT') AS only_that_column,
               has_function_privilege('mmops_fid_app', 'fid.secure_count()', 'EXECUTE')
                   AS execute_granted,
               NOT has_function_privilege('mmops_fid_reader', 'fid.secure_count()', 'EXECUTE')
                   AS execute_revoked_from_public,
               has_sequence_privilege('mmops_fid_app', 'fid.test_table_col1_seq', 'USAGE')
                   AS sequence_usage,
               (SELECT count(*) FROM pg_default_acl
                 WHERE pg_get_userbyid(defaclrole) = 'mmops_fid_owner') >= 4 AS default_acls,
               (SELECT pg_get_userbyid(lomowner) FROM pg_largeobject_metadata
                 WHERE oid = 4242003) = 'mmops_fid_owner' AS lo_owner
        FROM pg_namespace WHERE nspname = 'fid'""")[0]
    assert dict(checks) == {k: True for k in checks.keys()}

    async def as_app_role() -> int:
        conn = await asyncpg.connect(**ours.connect_kwargs())
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE mmops_fid_app")
                # Default privileges gave the app role INSERT on the table and USAGE on its
                # sequence (bigserial): the app's everyday write works after the restore.
                await conn.execute("INSERT INTO fid.owned_by_migration (body) VALUES ('app')")
                n: int = await conn.fetchval("SELECT fid.secure_count()")
                raise _Rollback(n)
        except _Rollback as done:
            return done.n
        finally:
            await conn.close()

    assert asyncio.run(as_app_role()) == 42


class _Rollback(Exception):
    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.n = n


# ---- a role the target does not have -----------------------------------------------------------

VANISHED = "mmops_fid_vanished"


def test_a_missing_role_is_reported_before_restoring_and_no_owner_no_privileges_restore(
    pg15: PostgresServer, make_db, tmp_path: Path
) -> None:
    source = make_db(pg15)
    pg15.psql(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{VANISHED}') THEN
                CREATE ROLE {VANISHED} NOLOGIN;
            END IF;
        END $$;
        CREATE SCHEMA app AUTHORIZATION {VANISHED};
        CREATE TABLE app.notes (id int PRIMARY KEY, body text);
        ALTER TABLE app.notes OWNER TO {VANISHED};
        GRANT SELECT ON app.notes TO {VANISHED};
        INSERT INTO app.notes VALUES (1, 'kept'), (2, NULL);
    """, database=source.database)
    before = data_digest(source)
    backup = tmp_path / "vanished.mmops"
    res = mmops("backup", "-o", str(backup), url=source)
    assert res.returncode == 0, res.stderr
    pg15.dropdb(source.database)
    pg15.psql(f"DROP ROLE {VANISHED}")

    target = make_db(pg15)
    args = ("restore", str(backup), "--yes", "--mode", "create",
            "--backup-dir", str(tmp_path / "safety"))
    refused = mmops(*args, url=target)
    assert refused.returncode == RestoreRefused.exit_code, (refused.returncode, refused.stderr)
    assert "Traceback" not in refused.stderr
    errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and VANISHED in errors[0] and "--no-owner" in errors[0], refused.stderr
    # Reported before the transaction: nothing was created in the target.
    assert fetch(target, "SELECT count(*) FROM pg_namespace WHERE nspname = 'app'")[0][0] == 0

    done = mmops(*args, "--no-owner", "--no-privileges", url=target)
    assert done.returncode == 0, done.stderr
    assert data_digest(target) == before
    owner = fetch(target, "SELECT pg_get_userbyid(relowner) FROM pg_class "
                           "WHERE oid = 'app.notes'::regclass")[0][0]
    assert owner == target.username
