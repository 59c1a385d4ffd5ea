"""Pure restore decisions: when a restore may start, and table load order."""

import pytest

from ops.engine.restore_policy import check_restore_allowed, load_order
from ops.engine.results import RestoreMode
from ops.engine.target import TargetState
from ops.errors import RestoreRefused

USERS = ("public", "users")
DOCS = ("public", "documents")


def target(**kw):
    base = dict(
        database="app",
        server_version="15",
        user_relations=2,
        schemas=frozenset({"public"}),
        alembic_revision="r1",
        table_columns={USERS: ("id", "email"), DOCS: ("id", "user_id")},
        referenced_by={USERS: frozenset({DOCS})},
        references={DOCS: frozenset({USERS})},
    )
    base.update(kw)
    return TargetState(**base)


BACKUP = {USERS: ("id", "email"), DOCS: ("id", "user_id")}


def allowed(mode, t, *, revision="r1", force=False, selected=None):
    return check_restore_allowed(
        mode=mode, target=t, backup_tables=BACKUP, backup_revision=revision, force=force,
        selected=selected,
    )


def test_create_into_a_non_empty_database_is_refused():
    with pytest.raises(RestoreRefused, match="not empty"):
        allowed(RestoreMode.CREATE, target())


def test_create_into_an_empty_database_is_allowed():
    assert allowed(RestoreMode.CREATE, target(user_relations=0, table_columns={})) == []


def test_data_only_refuses_differing_alembic_revision_unless_forced():
    with pytest.raises(RestoreRefused, match="alembic revision differs"):
        allowed(RestoreMode.DATA_ONLY, target(), revision="r0")
    warnings = allowed(RestoreMode.DATA_ONLY, target(), revision="r0", force=True)
    assert any("alembic" in w for w in warnings)


def test_data_only_refuses_when_the_target_lacks_a_column_even_with_force():
    t = target(table_columns={USERS: ("id",), DOCS: ("id", "user_id")})
    with pytest.raises(RestoreRefused, match="lacks column"):
        allowed(RestoreMode.DATA_ONLY, t, force=True)


def test_data_only_refuses_extra_target_columns_unless_forced():
    t = target(table_columns={USERS: ("id", "email", "nick"), DOCS: ("id", "user_id")})
    with pytest.raises(RestoreRefused, match="nick"):
        allowed(RestoreMode.DATA_ONLY, t)
    assert allowed(RestoreMode.DATA_ONLY, t, force=True)


def test_data_only_refuses_missing_table():
    with pytest.raises(RestoreRefused, match="has no table"):
        allowed(RestoreMode.DATA_ONLY, target(table_columns={USERS: ("id", "email")}))


def test_selected_table_referenced_by_an_unselected_one_is_refused():
    with pytest.raises(RestoreRefused, match="public.documents references public.users"):
        allowed(RestoreMode.DATA_ONLY, target(), selected=[USERS])
    assert allowed(RestoreMode.DATA_ONLY, target(), selected=[DOCS]) == []


def test_selected_tables_need_data_only_mode():
    with pytest.raises(RestoreRefused, match="data-only"):
        allowed(RestoreMode.REPLACE, target(), selected=[DOCS])


def test_load_order_puts_referenced_tables_first_and_survives_cycles():
    refs = {DOCS: {USERS}, ("s", "a"): {("s", "b")}, ("s", "b"): {("s", "a")}}
    order = load_order([DOCS, USERS, ("s", "a"), ("s", "b")], refs)
    assert order.index(USERS) < order.index(DOCS)
    assert set(order) == {DOCS, USERS, ("s", "a"), ("s", "b")}
    assert load_order([("x", "self")], {("x", "self"): {("x", "self")}}) == [("x", "self")]
