"""Server-side entry point of the remote-ops agent: ``python -m ops.agent backup|restore|...``.

Runs on the app server inside ``OPS_DIR/venv``; the laptop drives it over one SSH channel (see
``protocol``). DATABASE_URL is read from the env file by the agent itself and never taken from
argv; requests (modes, tables) arrive on stdin as JSON, results leave as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import traceback
from collections.abc import Sequence

from ..dburl import refused_credentials_hint
from ..errors import AuthenticationError, OpsError, RemoteError
from .handlers import COMMANDS
from .protocol import Emitter, Inbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        p.add_argument("--ops-dir", default=os.path.expanduser("~/markdown-manager-ops"))
        p.add_argument("--host", default=os.uname().nodename, help="How the laptop names us.")
        if name in {"status", "doctor", "backup", "restore"}:
            p.add_argument("--env-file", default="/etc/markdown-manager.env")
        if name == "backup":
            p.add_argument("--pull-timeout", type=float, default=24 * 3600)
        if name == "restore":
            p.add_argument("--upload-timeout", type=float, default=24 * 3600)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    out = Emitter()
    inbox = Inbox()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        result = COMMANDS[args.command](args, out, inbox)
    except OpsError as exc:
        hint = exc.hint
        env_file = getattr(args, "env_file", None)
        if isinstance(exc, AuthenticationError) and env_file:  # where the URL came from
            hint = refused_credentials_hint(env_file, args.host)
        out.message("error", kind=type(exc).__name__, message=exc.message, hint=hint,
                    exit_code=exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        out.message("error", kind="Interrupted", message="The agent was interrupted.",
                    hint=None, exit_code=130)
        return 130
    except Exception as exc:  # an agent bug: its type and where, never its text (may hold data)
        out.log("".join(traceback.format_tb(exc.__traceback__)))
        out.message("error", kind="RemoteError",
                    message=f"The server-side agent failed with {type(exc).__name__} (an agent "
                    "bug; the traceback is in the log lines above).",
                    hint=None, exit_code=RemoteError.exit_code)
        return RemoteError.exit_code
    out.message("result", started=started, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
