"""The workflows, written once over a transport (direct, agent over SSH, SSH tunnel):

    backup:  backup → verify → publish into the repository     ``jobs.backup.run_backup``
    restore: verify → plan → confirm → safety backup → restore → row check
             (``jobs.restore.prepare_restore`` then ``jobs.restore.run_restore``)

The steps that run next to the engine live in ``ops.steps`` (shared with the agent).
"""
