"""The one plan every mode shows, and the rules it applies (pure; no server)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ops.engine.results import RestoreMode
from ops.engine.selection import select_tables
from ops.errors import ArchiveError, RestoreRefused, UsageError
from ops.interop.describe import ForeignFile, describe_legacy_json, describe_sql_script
from ops.interop.detect import FileKind, detect_kind
from ops.policy.keep_newest import select_beyond_newest
from ops.policy.live import LiveForeignKey, LiveStatus, LiveTable
from ops.policy.plan import build_foreign_plan, build_plan, row_mismatches
from ops.policy.restore_mode import resolve_mode

ROOT = Path(__file__).resolve().parents[2]
OLD_JSON = ROOT / "tests" / "fixtures" / "legacy" / "production_backup_20240501_120000.json"

MANIFEST = {
    "database": "app", "created_at": "2026-01-01T00:00:00+00:00", "alembic_revision": "r2",
    "schemas": ["public"],
    "tables": [{"schema": "public", "name": "alembic_version", "rows": 1},
               {"schema": "public", "name": "users", "rows": 3},
               {"schema": "public", "name": "documents", "rows": 10}],
}


def live(*tables: tuple[str, str, int], database: str = "app", revision: str | None = "r2"
         ) -> LiveStatus:
    return LiveStatus(database=database, server="u@h/app", server_version="15",
                      alembic_revision=revision,
                      tables=[LiveTable(s, n, r) for s, n, r in tables])


LIVE = live(("public", "users", 5), ("public", "documents", 7))


def test_auto_mode_is_one_rule_create_into_empty_replace_non_empty_data_only_with_tables():
    assert resolve_mode("auto", [], live_has_tables=False) is RestoreMode.CREATE
    assert resolve_mode("auto", [], live_has_tables=True) is RestoreMode.REPLACE
    assert resolve_mode("auto", ["users"], live_has_tables=False) is RestoreMode.DATA_ONLY
    assert resolve_mode("data-only", ["users"], live_has_tables=True) is RestoreMode.DATA_ONLY


@pytest.mark.parametrize("mode", ["create", "replace"])
def test_tables_with_an_explicit_whole_database_mode_is_a_usage_error(mode: str) -> None:
    with pytest.raises(UsageError, match=f"not --mode {mode}") as info:
        resolve_mode(mode, ["users"], live_has_tables=True)
    assert info.value.exit_code == 2


def test_plan_with_tables_is_data_only_and_lists_only_the_selected_tables() -> None:
    plan = build_plan(MANIFEST, LIVE, host="h", backup_file="f.mmops", tables=["doc*"])
    assert plan.mode == "data-only" and plan.selected_tables == ["doc*"]
    assert [(t.table, t.backup_rows, t.live_rows) for t in plan.tables] == [
        ("public.documents", 10, 7)
    ]
    assert plan.dropped == []
    whole = build_plan(MANIFEST, LIVE, host="h", backup_file="f.mmops", mode="data-only")
    assert [t.table for t in whole.tables] == ["public.users", "public.documents"]


def test_a_pattern_matching_nothing_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no table matching 'nope'"):
        build_plan(MANIFEST, LIVE, host="h", backup_file="f", tables=["nope"])


def test_replace_preview_counts_the_rows_of_tables_that_disappear() -> None:
    current = live(("public", "users", 5), ("public", "extra", 10_000), ("public", "more", 335),
                   ("audit", "log", 9))
    plan = build_plan(MANIFEST, current, host="h", backup_file="f.mmops")
    assert plan.mode == "replace"
    assert [(d.table, d.live_rows) for d in plan.dropped] == [
        ("public.extra", 10_000), ("public.more", 335)]
    assert plan.live_rows_replaced == 5 and plan.live_rows_dropped == 10_335
    assert plan.live_rows_lost == 10_340
    assert plan.needs_confirmation


def test_partitions_are_compared_leaf_to_leaf_not_as_new_tables() -> None:
    manifest = {**MANIFEST, "tables": [
        {"schema": "public", "name": "events_2025", "rows": 4},
        {"schema": "public", "name": "events_2026", "rows": 6}]}
    current = live(("public", "events_2025", 4), ("public", "events_2026", 5))
    plan = build_plan(manifest, current, host="h", backup_file="f")
    assert [t.live_rows for t in plan.tables] == [4, 5] and plan.dropped == []
    after = live(("public", "events_2025", 4), ("public", "events_2026", 6))
    assert row_mismatches(manifest, after) == []


def test_another_databases_backup_over_live_data_is_refused_naming_it() -> None:
    plan = build_plan({**MANIFEST, "database": "scratch"}, LIVE, host="h", backup_file="f")
    with pytest.raises(RestoreRefused, match="backup is of database 'scratch', not 'app'"):
        plan.check_allowed()
    forced = build_plan({**MANIFEST, "database": "scratch"}, LIVE, host="h", backup_file="f",
                        force=True)
    forced.check_allowed()  # --force overrides
    empty = build_plan({**MANIFEST, "database": "scratch"}, live(), host="h", backup_file="f")
    empty.check_allowed()  # a create into an empty database loses nothing
    assert empty.mode == "create" and not empty.needs_confirmation


def test_create_into_a_database_with_tables_is_refused_before_anything() -> None:
    plan = build_plan(MANIFEST, LIVE, host="h", backup_file="f", mode="create")
    with pytest.raises(RestoreRefused, match="--mode create needs an empty database"):
        plan.check_allowed()


def test_data_only_with_differing_revisions_is_refused_in_the_plan() -> None:
    plan = build_plan(MANIFEST, live(("public", "users", 1), revision="r9"), host="h",
                      backup_file="f", mode="data-only")
    with pytest.raises(RestoreRefused, match="Alembic revisions differ"):
        plan.check_allowed()


def test_row_check_can_be_limited_to_the_restored_tables() -> None:
    after = live(("public", "users", 99), ("public", "documents", 10))
    assert row_mismatches(MANIFEST, after, ["public.documents"]) == []
    assert any("users" in m for m in row_mismatches(MANIFEST, after))


def test_the_old_json_fixture_is_described_from_its_own_contents() -> None:
    info = describe_legacy_json(OLD_JSON)
    assert info.created_at == "2024-05-01T12:00:00.123456"
    assert info.source_database == "markdown_manager"
    assert info.alembic_revision == "0003_document_word_count"
    assert dict(info.tables) == {"documents": 2, "custom_dictionaries": 1, "users": 2}
    assert list(info.failed_tables) == ["document_recovery"]
    current = live(("public", "users", 5), ("public", "documents", 7),
                   database="markdown_manager", revision="0002")
    plan = build_foreign_plan(info, current, host="h", backup_file="old.json")
    assert plan.kind is FileKind.LEGACY_JSON and plan.mode == "data-only"
    assert {t.table: t.live_rows for t in plan.tables} == {
        "public.documents": 7, "custom_dictionaries": None, "public.users": 5}
    assert "document_recovery failed" in " ".join(plan.warnings)
    refusals = " ".join(plan.refusals)
    assert "no table custom_dictionaries" in refusals and "Alembic revisions differ" in refusals
    for kw in ({"tables": ["users"]}, {"mode": "replace"}, {"mode": "create"}):
        with pytest.raises(UsageError, match="applies to .mmops backups"):
            build_foreign_plan(info, current, host="h", backup_file="old.json", **kw)


def test_an_old_json_backup_without_alembic_version_is_refused_as_the_preview_says() -> None:
    info = ForeignFile(kind=FileKind.LEGACY_JSON, description="old", source_database="app",
                       alembic_revision=None, tables=[("users", 2)])
    plan = build_foreign_plan(info, LIVE, host="h", backup_file="old.json")
    assert any("backup none, live r2" in r for r in plan.refusals)
    with pytest.raises(RestoreRefused):
        plan.check_allowed()  # the same rule the restore applies: refused unless --force
    build_foreign_plan(info, LIVE, host="h", backup_file="old.json", force=True).check_allowed()


def test_a_sql_script_is_described_and_a_clash_without_clean_is_foretold(
    tmp_path: Path
) -> None:
    dump = tmp_path / "d.sql"
    dump.write_text(
        "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.8\n"
        "-- Dumped by pg_dump version 15.8\n\n"
        "CREATE TABLE public.users (id integer);\n"
        "COPY public.users (id) FROM stdin;\n1\n2\n\\.\n\n"
        "COPY public.alembic_version (version_num) FROM stdin;\nr2\n\\.\n\n"
        "--\n-- PostgreSQL database dump complete\n--\n"
    )
    info = describe_sql_script(dump)
    assert info.description == "plain SQL dump (pg_dump 15.8, from PostgreSQL 15.8)"
    assert info.tables == [("public.users", 2), ("public.alembic_version", 1)]
    assert info.alembic_revision == "r2" and info.creates_tables and not info.drops_tables
    plan = build_foreign_plan(info, LIVE, host="h", backup_file="d.sql")
    assert plan.mode == "sql-script"
    assert any("not made with pg_dump --clean" in w for w in plan.warnings)
    clean = ForeignFile(**{**info.__dict__, "drops_tables": True})
    plan = build_foreign_plan(clean, LIVE, host="h", backup_file="d.sql")
    assert not any("--clean" in w for w in plan.warnings)
    with pytest.raises(UsageError, match="--mode data-only applies to .mmops backups"):
        build_foreign_plan(info, LIVE, host="h", backup_file="d.sql", mode="data-only")


def test_kinds_are_told_apart_by_contents_by_one_detector(tmp_path: Path) -> None:
    notes = tmp_path / "notes.sql"  # the name does not matter, the contents do
    notes.write_text("shopping list\n")
    with pytest.raises(ArchiveError, match="neither a .mmops backup"):
        detect_kind(notes)
    assert detect_kind(OLD_JSON) is FileKind.LEGACY_JSON
    script = tmp_path / "x.txt"
    script.write_text("-- hi\nCREATE TABLE t (a int);\n")
    assert detect_kind(script) is FileKind.SQL_SCRIPT


def _t(day: int) -> dt.datetime:
    return dt.datetime(2026, 1, day, tzinfo=dt.timezone.utc)


def test_safety_retention_is_per_database_by_the_backups_own_time() -> None:
    # Names sort "app" < "zeta"; the old rule (newest N names) deleted every backup of one db.
    items = [(f"safety-app-2026010{d}T000000Z.mmops", "app", _t(d)) for d in range(1, 8)]
    items += [(f"safety-zeta-2026010{d}T000000Z.mmops", "zeta", _t(d)) for d in range(1, 3)]
    doomed = select_beyond_newest(items, keep=5)
    assert doomed == ["safety-app-20260101T000000Z.mmops", "safety-app-20260102T000000Z.mmops"]
    assert select_beyond_newest(items, keep=0)  # never fewer than one per database kept
    assert [n for n in select_beyond_newest(items, keep=1) if "zeta" in n] == [
        "safety-zeta-20260101T000000Z.mmops"]


FK_MANIFEST = {**MANIFEST, "tables": [
    *MANIFEST["tables"], {"schema": "public", "name": "shares", "rows": 4},
    {"schema": "we.ird", "name": 'q"t', "rows": 2}]}
FK_LIVE = LiveStatus(
    database="app", server="u@h/app", server_version="15", alembic_revision="r2",
    tables=[LiveTable("public", "users", 5), LiveTable("public", "documents", 7),
            LiveTable("public", "shares", 1), LiveTable("we.ird", 'q"t', 0)],
    foreign_keys=[LiveForeignKey("public", "documents", "public", "users"),
                  LiveForeignKey("public", "shares", "public", "documents"),
                  LiveForeignKey("we.ird", 'q"t', "public", "shares")])


def test_tables_referencing_the_selection_block_the_plan_even_with_force() -> None:
    plan = build_plan(FK_MANIFEST, FK_LIVE, host="h", backup_file="f", tables=["users"],
                      force=True)
    assert plan.blocked == [
        'Tables public.documents, public.shares, we.ird.q"t reference the selected tables '
        "through a foreign key (directly or through another table) and have to be restored "
        "with them: add them to --tables or pass --with-dependents (make: WITH_DEPENDENTS=1)."]
    with pytest.raises(RestoreRefused, match="public.shares"):
        plan.check_allowed()
    leaf = build_plan(FK_MANIFEST, FK_LIVE, host="h", backup_file="f", tables=['"we.ird".*'])
    assert leaf.blocked == [] and leaf.dependents == []


def test_with_dependents_adds_the_referencing_tables_transitively_as_exact_patterns() -> None:
    plan = build_plan(FK_MANIFEST, FK_LIVE, host="h", backup_file="f", tables=["users"],
                      with_dependents=True)
    plan.check_allowed()
    assert plan.dependents == ["public.documents", "public.shares", 'we.ird.q"t']
    assert [t.table for t in plan.tables] == [
        "public.users", "public.documents", "public.shares", 'we.ird.q"t']
    keys = [(t["schema"], t["name"]) for t in FK_MANIFEST["tables"]]
    # what the engine is asked for selects exactly those tables, odd names included
    assert select_tables(keys, plan.restore_patterns) == [
        ("public", "users"), ("public", "documents"), ("public", "shares"), ("we.ird", 'q"t')]


def test_a_dependent_the_backup_lacks_blocks_the_plan_naming_it() -> None:
    plan = build_plan(MANIFEST, FK_LIVE, host="h", backup_file="f", tables=["documents"],
                      with_dependents=True)
    assert plan.blocked and "public.shares" in plan.blocked[0]
    assert "the backup does not hold them" in plan.blocked[0]


def test_a_status_from_an_older_agent_has_no_foreign_keys_and_still_parses() -> None:
    d = FK_LIVE.to_dict()
    assert LiveStatus.from_dict(d) == FK_LIVE
    del d["foreign_keys"]
    assert LiveStatus.from_dict(d).foreign_keys == []
