"""publish → prune: a verified backup file goes into the repository (optionally age-encrypted,
streamed, atomic), then the repository keeps what the retention rules say. Written once: the
laptop runs it for direct and tunnel modes, the server's agent for agent mode (so the server
uploads directly and only ever holds the public recipient)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine.results import Progress, ProgressCallback
from ..errors import RepositoryError
from ..repository import open_repository
from ..repository.base import Repository
from ..repository.digest import DigestingSink
from ..repository.verified import Unverified, list_backups, meta_name

# Storage settings a laptop may hand to the agent (over the SSH channel's stdin, never argv).
STORAGE_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "STORAGE_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
)
BLOCK = 1 << 20


@dataclass(frozen=True)
class PublishRequest:
    """Where a finished backup goes. ``storage_env`` holds secrets: never rendered, only sent
    on the agent's stdin."""

    repo: str
    encrypt_to: str | None = None  # age recipients or a recipients file (public keys only)
    lock_days: int | None = None
    keep: str | None = None  # retention rules, e.g. "daily=7 weekly=4 monthly=12"
    keep_local: bool = False
    repo_env_file: str | None = None  # server side: a dotenv file with storage settings
    storage_env: dict[str, str] = field(default_factory=dict, repr=False)

    def to_dict(self, *, secrets: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not secrets:
            d["storage_env"] = sorted(self.storage_env)  # names only
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublishRequest:
        env = d.get("storage_env") or {}
        return cls(repo=str(d["repo"]), encrypt_to=d.get("encrypt_to"),
                   lock_days=d.get("lock_days"), keep=d.get("keep"),
                   keep_local=bool(d.get("keep_local")), repo_env_file=d.get("repo_env_file"),
                   storage_env=dict(env) if isinstance(env, dict) else {})


@dataclass(frozen=True)
class PublishOutcome:
    repository: str  # display form, no secret
    name: str
    size_bytes: int
    encrypted: bool
    deleted: list[str] = field(default_factory=list)  # pruned by the retention rules
    locked: list[str] = field(default_factory=list)  # a prune could not delete (Object Lock)
    # files named like this database's backups that are not verified ones: left alone, reported
    unverified: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublishOutcome:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def storage_environ(request: PublishRequest, base: Mapping[str, str] | None = None
                    ) -> dict[str, str]:
    """The environment the repository client sees: ``base`` (this process's) overlaid with
    the storage settings of the request (the agent puts the server's REPO_ENV_FILE values and
    what the laptop handed over there)."""
    env = dict(os.environ if base is None else base)
    env.update({k: v for k, v in request.storage_env.items() if k in STORAGE_ENV})
    return env


def storage_settings(dotenv_text: str) -> dict[str, str]:
    """The storage settings (STORAGE_ENV names) of a dotenv file's text."""
    import io

    from dotenv import dotenv_values

    values = dotenv_values(stream=io.StringIO(dotenv_text), interpolate=False)
    return {k: v for k, v in values.items() if k in STORAGE_ENV and v}


def open_target(request: PublishRequest, *, environ: Mapping[str, str] | None = None
                ) -> Repository:
    options: dict[str, Any] = {}
    if request.lock_days:
        options["lock_days"] = request.lock_days
    return open_repository(request.repo, environ=storage_environ(request, environ), **options)


def write_meta(repo: Repository, backup_name: str, meta: dict[str, Any]) -> None:
    """What ``repo list`` shows without downloading or decrypting the backup: database, time,
    size, kind, alembic revision, encrypted, counts. No table names (they may be sensitive) and
    never a URL or secret; ``stored_sha256``, the digest of the object's bytes as stored (the
    encrypted ones for ``.age``), lets ``repo check`` prove it intact without the identity.
    It is also what makes the object count as a backup (``repository.verified``)."""
    import json

    sink: Any = repo.create(meta_name(backup_name))
    try:
        sink.write(json.dumps(meta, sort_keys=True).encode())
        sink.commit()
    except BaseException:
        sink.abort()
        raise


def publish(
    path: Path, repo: Repository, *, encrypt_to: str | None = None,
    progress: ProgressCallback | None = None, meta: dict[str, Any] | None = None,
) -> PublishOutcome:
    """Stream ``path`` into ``repo`` (age-encrypted to ``encrypt_to`` when given) under its own
    name (+ ``.age``); the object appears only when complete, a failure leaves nothing. Its
    ``meta`` is stored beside it (``NAME.meta.json``) for listing without the identity."""
    emit = progress or (lambda _p: None)
    name = path.name + (".age" if encrypt_to else "")
    size = path.stat().st_size
    stored_sink = DigestingSink(repo.create(name, size_hint=size))  # the bytes as stored
    sink: Any = stored_sink
    if encrypt_to:
        from ..crypto.age import EncryptingSink, parse_recipients

        sink = EncryptingSink(sink, parse_recipients(encrypt_to))
    try:
        done = 0
        with path.open("rb") as src:
            for block in iter(lambda: src.read(BLOCK), b""):
                sink.write(block)
                done += len(block)
                emit(Progress("upload", done=done, total=size, item=name))
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    digest = stored_sink.digest()
    stored = next((e.size for e in repo.list(name) if e.name == name), digest.size)
    if stored != digest.size:  # no sidecar: the object never counts as a backup
        raise RepositoryError(
            f"{repo.url} holds {name} with {stored} bytes after {digest.size} were written; "
            "it does not count as a backup.", hint="Check the storage, then back up again.")
    if meta is not None:
        # A file that is already age-encrypted (.age) is stored as it is: still encrypted.
        write_meta(repo, name, {**meta, "size": stored,
                                "encrypted": bool(encrypt_to) or name.endswith(".age"),
                                "stored_sha256": digest.sha256})
    return PublishOutcome(repository=repo.url, name=name, size_bytes=stored,
                          encrypted=bool(encrypt_to) or name.endswith(".age"))


def prune(repo: Repository, database_name: str, keep: str
          ) -> tuple[list[str], list[str], list[Unverified]]:
    """Apply ``keep`` to ``database_name``'s verified backups in ``repo`` (never its newest,
    never another database's, never safety backups, never a file that is not a verified
    backup); returns (deleted, could not delete, left alone as not verified)."""
    from ..policy.keep_spec import parse_keep
    from ..policy.retention import plan_retention

    rules = parse_keep(keep)
    deleted: list[str] = []
    locked: list[str] = []
    with repo.lock():
        listing = list_backups(repo, database=database_name, safety=False)
        plan = plan_retention([(b.name, b.info.created_at) for b in listing.backups], **rules)
        for name, _ts in plan.delete:
            try:
                repo.delete(name)
                deleted.append(name)
            except RepositoryError as exc:
                locked.append(exc.message)
                continue
            repo.delete(meta_name(name))
    return deleted, locked, listing.unverified
