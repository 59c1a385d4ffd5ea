"""``mmops web [--bind ADDR:PORT] [--root-path /admin/db] [--repo R]`` and ``mmops web
hash-password``:
parse → build the app → serve it with uvicorn. No logic here (that is ``ops.web`` + jobs)."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import click

from ..errors import UsageError


def _split_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--bind {bind!r} is not HOST:PORT (e.g. 127.0.0.1:8080).")
    return host.strip("[]"), int(port)


def _ip_addresses(_ctx: click.Context, _param: click.Parameter,
                  values: tuple[str, ...]) -> tuple[str, ...]:
    """Each --trusted-proxy as an IP address in its canonical spelling."""
    try:
        return tuple(str(ipaddress.ip_address(v.strip("[]"))) for v in values)
    except ValueError as exc:
        raise UsageError(f"--trusted-proxy takes an IP address: {exc}.") from None


@click.group(invoke_without_command=True)
@click.option("--bind", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Where to listen. Anything but loopback marks the session cookie Secure "
              "(put TLS in front).")
@click.option("--root-path", default="", metavar="PATH",
              help="Serve under this path behind a reverse proxy (e.g. /admin/db); the proxy "
              "passes the path on unchanged.")
@click.option("--env-file", type=click.Path(path_type=Path, dir_okay=False),
              help="A dotenv file defining DATABASE_URL.")
@click.option("--backup-dir", envvar="BACKUP_DIR", type=click.Path(path_type=Path,
              file_okay=False), default=None,
              help="Keep backups (and safety/ backups) here [default: a private directory "
              "under $TMPDIR, removed when the service stops].")
@click.option("--repo", envvar=["REPO", "MMOPS_REPO"], default=None,
              help="Repository the list comes from and new backups go to: a directory, "
              "s3://BUCKET/PREFIX or gs://BUCKET/PREFIX (credentials from the AWS_* / GOOGLE_* "
              "environment or REPO_ENV_FILE) [default: --backup-dir].")
@click.option("--repo-env-file", envvar="REPO_ENV_FILE",
              type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A dotenv file with the storage settings (AWS_ACCESS_KEY_ID, ...) "
              "[default: --env-file].")
@click.option("--encrypt-to", envvar="ENCRYPT_TO", default=None,
              help="age recipient(s) or a recipients file: new backups are stored (and "
              "downloaded) as NAME.mmops.age.")
@click.option("--identity", envvar="AGE_IDENTITY", default=None,
              type=click.Path(path_type=Path, dir_okay=False),
              help="age identity file that opens .mmops.age backups for restores here (the "
              "server can then read them; leave it unset to keep it write-only).")
@click.option("--idle-timeout", type=click.IntRange(1, 24 * 60), default=15, show_default=True,
              help="Minutes without a request before a session ends.")
@click.option("--trust-header", metavar="HEADER", default=None,
              help="Behind an authenticating proxy: the header naming the signed-in user "
              "(e.g. X-Forwarded-User), honoured only from --trusted-proxy addresses.")
@click.option("--trusted-proxy", multiple=True, metavar="ADDR", callback=_ip_addresses,
              help="Address of the reverse proxy in front (repeatable): sign-ins are limited "
              "per address its X-Forwarded-For names, and only it may set --trust-header.")
@click.pass_context
def web(ctx: click.Context, bind: str, root_path: str, env_file: Path | None,
        backup_dir: Path | None, repo: str | None, repo_env_file: Path | None,
        encrypt_to: str | None, identity: Path | None, idle_timeout: int,
        trust_header: str | None, trusted_proxy: tuple[str, ...]) -> None:
    """Serve the Database Management page (create and download backups, restore uploads).

    The database comes from DATABASE_URL or --env-file; the admin password's argon2id hash
    from MMOPS_WEB_PASSWORD_HASH (make it with `mmops web hash-password`).
    """
    if ctx.invoked_subcommand is not None:
        return
    import logging

    import uvicorn

    from ..dburl import resolve_database_url
    from ..web import WebSettings, create_app
    from ..web.passwords import check_hash
    from ..web.settings import PASSWORD_HASH_ENV, is_loopback

    host, port = _split_bind(bind)
    if trust_header and not trusted_proxy:
        raise UsageError("--trust-header needs at least one --trusted-proxy address.")
    encoded = os.environ.get(PASSWORD_HASH_ENV) or None
    storage = check_storage(repo, encrypt_to, identity, repo_env_file or env_file,
                            explicit=repo_env_file is not None)
    settings = WebSettings(
        database_url=resolve_database_url(database_url=None, env_file=env_file),
        password_hash=check_hash(encoded) if encoded else None,
        root_path=root_path, secure_cookies=not is_loopback(host),
        idle_timeout_s=idle_timeout * 60.0, backup_dir=backup_dir, repo=repo or None,
        storage_env=storage, encrypt_to=encrypt_to or None,
        identity=str(identity) if identity else None,
        trust_header=trust_header, trusted_proxies=frozenset(trusted_proxy),
    )
    app = create_app(settings)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    click.echo(f"Database Management for {settings.database_url.database} on "
               f"http://{bind}{settings.root_path}/"
               + (f", backups in {app.state.web.repo.url}" if repo else ""), err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False,
                server_header=False, access_log=True)


def check_storage(repo: str | None, encrypt_to: str | None, identity: Path | None,
                  env_file: Path | None, *, explicit: bool) -> dict[str, str]:
    """Refuse a bad repository URL, recipient or identity file before serving (one sentence
    each, no network); the storage settings of ``env_file`` (REPO_ENV_FILE, else the
    --env-file; secrets, never shown)."""
    from ..errors import ConfigError

    if repo:
        from ..repository import check_repository_spec

        check_repository_spec(repo)
    if encrypt_to:
        from ..crypto.age import parse_recipients

        parse_recipients(encrypt_to)
    if identity is not None:
        from ..crypto.age import load_identities

        load_identities(identity)  # readable and a valid identity; not kept in memory
    if env_file is None:
        return {}
    from ..steps.publish import storage_settings

    try:
        return storage_settings(env_file.read_text())
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"REPO_ENV_FILE {env_file} does not exist.") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"Cannot read the storage settings file {env_file}: "
                          f"{exc.strerror}.") from exc


@web.command("hash-password")
def hash_password() -> None:
    """Read the admin password from stdin (one line), print its argon2id hash for
    MMOPS_WEB_PASSWORD_HASH."""
    from ..web.passwords import hash_password as make_hash

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    click.echo(make_hash(password))
