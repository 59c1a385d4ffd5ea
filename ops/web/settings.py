"""What ``mmops web`` was started with: one frozen value the app reads, never the environment."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ..dburl import DbUrl

PASSWORD_HASH_ENV = "MMOPS_WEB_PASSWORD_HASH"  # noqa: S105 - a variable name


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only binds that may use plain HTTP
    cookies (no ``Secure`` flag); anything else is assumed to be behind TLS."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebSettings:
    database_url: DbUrl = field(repr=False)
    password_hash: str | None = field(default=None, repr=False)  # argon2id, never the password
    root_path: str = ""  # e.g. /admin/db behind a reverse proxy ("" = at the root)
    secure_cookies: bool = True  # False only when bound to loopback
    idle_timeout_s: float = 15 * 60
    backup_dir: Path | None = None  # None: backups live in the private work dir while we run
    repo: str | None = None  # REPO: a directory, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX
    # Storage settings from REPO_ENV_FILE (AWS_* keys, ...), over this process's environment.
    storage_env: dict[str, str] = field(default_factory=dict, repr=False)
    encrypt_to: str | None = None  # ENCRYPT_TO: age recipients (public keys only)
    identity: str | None = None  # AGE_IDENTITY: the identity *file* that opens .mmops.age
    tmp_root: Path | None = None  # where the private work dir is made (default: $TMPDIR)
    trust_header: str | None = None  # e.g. X-Forwarded-User set by an authenticating proxy
    # The reverse proxy's addresses: its X-Forwarded-For names the client (rate limits), and only
    # it may set trust_header.
    trusted_proxies: frozenset[str] = frozenset()
    login_failures_allowed: int = 5  # per client address and window
    login_window_s: float = 600
    review_ttl_s: float = 30 * 60  # an uploaded file waits this long for its confirmation
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def __post_init__(self) -> None:
        root = self.root_path.rstrip("/")
        if root and not root.startswith("/"):
            root = "/" + root
        object.__setattr__(self, "root_path", root)
