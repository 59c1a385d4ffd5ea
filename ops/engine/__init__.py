"""The dump/restore engine: asyncpg + SQLAlchemy only (never click, Fabric or rich).

Public API (all results are plain dataclasses, see ``results.py``)::

    await backup(url, out_path, jobs=2, tables=None, exclude_tables=None, progress=None)
        -> BackupResult
    await restore(url, archive_path, mode=RestoreMode.CREATE, lock_timeout=30.0, force=False,
                  tables=None, confirm=None, progress=None) -> RestoreResult

``progress`` is a callable taking a ``Progress`` event; it is called from the event loop thread.
"""
