"""Before a schedule is installed, prove on the server, as the user its runs will run as, that
a run can work: the database answers, the backup directory is writable (created now if
missing — a systemd unit's ReadWritePaths= needs it to exist), the repository can be listed.
A schedule that would fail at its first run is refused here, before anything is installed.
"""

from __future__ import annotations

import errno
import os
import pwd
import tempfile
from pathlib import Path

from ..dburl import DbUrl
from ..errors import ConfigError, OpsError, RepositoryError


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def check_backup_dir(repo: str) -> None:
    """A local repository directory exists (made 0700 if missing) and this user can create
    and remove a file in it — the way a scheduled run writes its backup."""
    path = Path(repo)
    user = _user()
    fix = (f"create it for {user} (sudo install -d -o {user} -m 0700 {path}) or choose "
           "another REPO")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".mmops-write-check-"):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        if exc.errno in (errno.ENOTDIR, errno.EEXIST):
            reason = "it is not a directory"
        raise ConfigError(f"The scheduled backup could not run: {user} cannot write to the "
                          f"backup directory {path} on this server ({reason}); {fix}.") from exc


def check_repository(repo: str, storage_env: dict[str, str]) -> None:
    """An object-store repository answers a listing with these credentials."""
    from ..steps.publish import PublishRequest, open_target

    try:
        open_target(PublishRequest(repo=repo, storage_env=storage_env)).list()
    except OpsError as exc:
        raise RepositoryError(f"The scheduled backup could not run: the repository {repo} "
                              f"cannot be listed from this server: {exc}") from exc
    except Exception as exc:  # a client library's own error, named by its type only
        raise RepositoryError(f"The scheduled backup could not run: the repository {repo} "
                              f"cannot be listed from this server ({type(exc).__name__}); "
                              "check REPO and the storage settings.") from exc


def check_database(url: DbUrl) -> None:
    """The database in the app's env file answers (a run would fail at once otherwise)."""
    from .. import aio
    from ..steps.status import read_live_status

    try:
        aio.run(lambda: read_live_status(url))
    except OpsError as exc:  # same class (exit code) and hint, with what it stopped
        exc.message = f"The scheduled backup could not run: {exc.message}"
        raise


def prove_runnable(repo: str, storage_env: dict[str, str], url: DbUrl) -> None:
    check_database(url)
    if "://" in repo:
        check_repository(repo, storage_env)
    else:
        check_backup_dir(repo)
