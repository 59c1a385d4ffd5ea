from pathlib import Path

import pytest

from ops.dburl import (
    database_url_from_dotenv,
    parse_database_url,
    read_env_file,
    redact_text,
    resolve_database_url,
)
from ops.errors import ConfigError


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://app:s3cr%40t%2Fx@db.internal:6543/markdown",
        "postgresql+asyncpg://app:s3cr%40t%2Fx@db.internal:6543/markdown",
        "postgresql+psycopg://app:s3cr%40t%2Fx@db.internal:6543/markdown",
        "postgresql+psycopg2://app:s3cr%40t%2Fx@db.internal:6543/markdown?sslmode=require",
    ],
)
def test_every_sqlalchemy_spelling_parses_to_the_same_parts(raw):
    url = parse_database_url(raw)
    assert (url.host, url.port, url.database, url.username) == (
        "db.internal", 6543, "markdown", "app",
    )
    assert url.password == "s3cr@t/x"  # percent-decoding done by SQLAlchemy


def test_sslmode_query_option_reaches_asyncpg():
    url = parse_database_url("postgresql://u:p@h/db?sslmode=require")
    assert url.connect_kwargs()["ssl"] == "require"


def test_redacted_forms_never_contain_the_password():
    url = parse_database_url("postgresql://app:hunter2@h:5432/db")
    for text in (str(url), repr(url), url.redacted()):
        assert "hunter2" not in text
    assert url.redacted() == "app@h:5432/db"


def test_non_postgres_url_is_refused_with_one_sentence():
    with pytest.raises(ConfigError, match="not PostgreSQL"):
        parse_database_url("mysql://u:p@h/db")


def test_url_without_database_is_refused():
    with pytest.raises(ConfigError, match="names no database"):
        parse_database_url("postgresql://u:p@h:5432")


def test_env_file_is_read_without_touching_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    env = tmp_path / "app.env"
    env.write_text('OTHER=1\nDATABASE_URL="postgresql://a:b%23c@h:1/d"\n')
    url = read_env_file(env)
    assert (url.password, url.host, url.port, url.database) == ("b#c", "h", 1, "d")
    import os

    assert "DATABASE_URL" not in os.environ


def test_missing_env_file_and_missing_key_have_their_own_messages(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_env_file(tmp_path / "nope.env")
    env = tmp_path / "app.env"
    env.write_text("OTHER=1\n")
    with pytest.raises(ConfigError, match="does not define DATABASE_URL"):
        read_env_file(env)


def test_precedence_flag_then_env_file_then_environment(tmp_path: Path):
    env = tmp_path / "e.env"
    env.write_text("DATABASE_URL=postgresql://f@h/fromfile\n")
    environ = {"DATABASE_URL": "postgresql://e@h/fromenv"}
    assert resolve_database_url(
        database_url="postgresql://x@h/flag", env_file=env, environ=environ
    ).database == "flag"
    assert resolve_database_url(database_url=None, env_file=env, environ=environ).database == (
        "fromfile"
    )
    assert resolve_database_url(database_url=None, env_file=None, environ=environ).database == (
        "fromenv"
    )
    with pytest.raises(ConfigError, match="No database given"):
        resolve_database_url(database_url=None, env_file=None, environ={})


def test_redact_text_removes_secrets():
    assert redact_text("password hunter2 failed", ["hunter2", None]) == "password *** failed"


def test_env_text_is_parsed_in_memory_without_interpolation() -> None:
    text = ('# comment\nexport OTHER=1\nDATABASE_URL="postgresql://app:p%24ss@localhost:5432/mm"'
            "\nSECRET_KEY=${DATABASE_URL}\n")
    url = database_url_from_dotenv(text, source="/etc/x.env on the server")
    assert (url.username, url.password, url.host, url.database) == ("app", "p$ss", "localhost",
                                                                    "mm")
    assert "p$ss" not in repr(url) and "p$ss" not in str(url)


def test_env_text_without_database_url_names_the_file() -> None:
    with pytest.raises(ConfigError, match=r"/etc/x.env on the server does not define"):
        database_url_from_dotenv("OTHER=1\n", source="/etc/x.env on the server")


@pytest.mark.parametrize(
    "password", ["Zq@Kv:w/Xr%#Jy?&=", "Zq@Kv", "Zq:Kv@Xr", "Zq%Kv", "Zq/Kv@Xr"])
def test_unencoded_special_characters_are_one_sentence_without_any_fragment(password: str):
    raw = f"postgresql://app:{password}@localhost:5432/markdown"
    with pytest.raises(ConfigError) as info:
        parse_database_url(raw)
    text = str(info.value)
    assert info.value.exit_code == 3 and "percent-encode" in text.lower()
    for fragment in ("Zq", "Kv", "Xr", "Jy"):  # no piece of the password, however cut
        assert fragment not in text
    assert info.value.__cause__ is None or "Kv" not in str(info.value.__cause__)
