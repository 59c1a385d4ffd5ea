"""Scheduled backups on the server: what a schedule is (``spec``), the systemd units and the
crontab block that run it (``units``, ``crontab`` — pure text), installing them on the host the
agent runs on (``host``) and the scheduled run itself: backup → publish → prune with a lock, a
stall timeout and a status file (``run``)."""
