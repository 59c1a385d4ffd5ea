"""`mmops web hash-password` and what `mmops web` refuses before serving; the proxy header."""

from __future__ import annotations

from dataclasses import replace

from starlette.testclient import TestClient

from ops.dburl import DbUrl
from ops.web import WebSettings, create_app
from ops.web.passwords import verify_password
from tests.cli_helpers import mmops


def test_hash_password_reads_stdin_and_prints_only_an_argon2id_hash() -> None:
    r = mmops("web", "hash-password", input="s3cret-pass\n")
    assert r.returncode == 0, r.stderr
    encoded = r.stdout.strip()
    assert encoded.startswith("$argon2id$")
    assert "s3cret-pass" not in r.stdout + r.stderr
    assert verify_password(encoded, "s3cret-pass")
    assert not verify_password(encoded, "s3cret-pas")


def test_web_refuses_to_start_without_a_password_hash(app_db: DbUrl) -> None:
    r = mmops("web", "--bind", "127.0.0.1:1", url=app_db,
              env={"MMOPS_WEB_PASSWORD_HASH": ""})
    assert r.returncode == 3
    assert "MMOPS_WEB_PASSWORD_HASH" in r.stderr and "hash-password" in r.stderr


def test_web_refuses_a_password_hash_that_is_not_argon2id(app_db: DbUrl) -> None:
    r = mmops("web", url=app_db, env={"MMOPS_WEB_PASSWORD_HASH": "plain-password"})
    assert r.returncode == 3 and "not an argon2id hash" in r.stderr
    assert "plain-password" not in r.stderr


def test_web_refuses_a_bind_that_is_not_host_port(app_db: DbUrl) -> None:
    r = mmops("web", "--bind", "8080", url=app_db)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr


def test_the_proxy_user_header_signs_in_only_from_a_trusted_proxy(
        web_settings: WebSettings) -> None:
    trusted = replace(web_settings, trust_header="X-Forwarded-User",
                      trusted_proxies=frozenset({"testclient"}))
    with TestClient(create_app(trusted)) as c:
        r = c.get("/", headers={"X-Forwarded-User": "alice"}, follow_redirects=False)
        assert r.status_code == 200 and "Create backup" in r.text
    untrusted = replace(trusted, trusted_proxies=frozenset({"10.0.0.1"}))
    with TestClient(create_app(untrusted)) as c:
        r = c.get("/", headers={"X-Forwarded-User": "alice"}, follow_redirects=False)
        assert r.status_code == 303


def test_web_refuses_a_bad_repository_recipient_identity_or_storage_file_before_serving(
        app_db: DbUrl, tmp_path) -> None:
    secret = "wJalrXUtnFEMI-not-a-real-secret"
    r = mmops("web", "--repo", f"s3://AKIA:{secret}@bucket/x", url=app_db)
    assert r.returncode == 2 and "credentials come from the environment" in r.stderr
    assert secret not in r.stderr
    for how in ({"args": ("--repo", "ftp://host/x")}, {"env": {"REPO": "ftp://host/x"}},
                {"env": {"MMOPS_REPO": "ftp://host/x"}}):
        r = mmops("web", *how.get("args", ()), url=app_db, env=how.get("env"))
        assert r.returncode == 2 and "Unknown repository type ftp://" in r.stderr, how
    r = mmops("web", "--repo", "s3://bucket/x", url=app_db,
              env={"REPO_ENV_FILE": str(tmp_path / "missing.env")})
    assert r.returncode == 3 and "missing.env does not exist" in r.stderr
    r = mmops("web", url=app_db, env={"ENCRYPT_TO": "age1notarecipient"})
    assert r.returncode == 3 and "not a valid age or SSH public key" in r.stderr
    key = tmp_path / "key.txt"
    key.write_text("AGE-SECRET-KEY-1MANGLED\n")
    r = mmops("web", url=app_db, env={"AGE_IDENTITY": str(key)})
    assert r.returncode == 3 and "is not an age secret key" in r.stderr
    assert "MANGLED" not in r.stderr


def test_web_refuses_a_trusted_proxy_that_is_not_an_ip_address(app_db: DbUrl) -> None:
    r = mmops("web", "--trusted-proxy", "proxy.local", url=app_db)
    assert r.returncode == 2 and "--trusted-proxy takes an IP address" in r.stderr
    assert "Traceback" not in r.stderr
