"""Options a command group and each of its subcommands accept alike, so an option works where
users type it: ``mmops repo --repo R list`` = ``mmops repo list --repo R``, ``mmops remote
--host X backup`` = ``mmops remote backup --host X`` — the same in every group.

click parses a group's options before the subcommand's name and the subcommand's after it; the
same option on both, merged here, is how click supports this (there is no built-in for it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class SharedOptions:
    """``@opts.group`` on the group's callback, ``@opts.command`` on each subcommand's.

    The subcommand's function receives every option: a value typed after the subcommand wins,
    then one typed after the group, then the environment variable, then the default.
    """

    def __init__(self, *options: Decorator) -> None:
        self.options = options
        self.key = f"mmops.shared.{id(self)}"

        def probe() -> None: ...

        self._apply(probe)
        self.names = [p.name for p in probe.__click_params__]  # type: ignore[attr-defined]

    def _apply(self, f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(self.options):
            f = option(f)
        return f

    def group(self, f: Callable[..., Any]) -> Callable[..., Any]:
        """The group keeps its values (and where each came from) for its subcommands."""

        @functools.wraps(f)
        def callback(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            ctx.meta[self.key] = {name: (kwargs.pop(name), ctx.get_parameter_source(name))
                                  for name in self.names}
            return f(*args, **kwargs)

        return self._apply(callback)

    def command(self, f: Callable[..., Any]) -> Callable[..., Any]:
        """The subcommand takes a value typed after the group unless one was typed after it."""

        @functools.wraps(f)
        def callback(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            typed_on_group = ctx.meta.get(self.key, {})
            for name in self.names:
                if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                    continue
                value, source = typed_on_group.get(name, (None, None))
                if source is ParameterSource.COMMANDLINE:
                    kwargs[name] = value
            return f(*args, **kwargs)

        return self._apply(callback)


# --- the SSH settings every remote group shares (remote, tunnel, schedule) -----------------

HOST = click.option(
    "--host", envvar="HOST", show_envvar=True,
    help="user@host, user@host:port or an ssh_config alias [default: the local sandbox].")
SSH_CONFIG = click.option("--ssh-config", envvar="SSH_CONFIG", show_envvar=True,
                          help="An ssh_config file [default: your own].")
ENV_FILE = click.option(
    "--env-file", envvar="ENV_FILE", show_envvar=True,
    help="Dotenv file ON THE SERVER holding DATABASE_URL [default: /etc/markdown-manager.env].")
ACCEPT_NEW_HOST_KEY = click.option(
    "--accept-new-host-key", envvar="ACCEPT_NEW_HOST_KEY", show_envvar=True, is_flag=True,
    help="Accept and remember an unknown SSH host key (check its fingerprint); a changed key "
    "is always refused.")
OPS_DIR = click.option("--ops-dir", envvar="OPS_DIR", show_envvar=True,
                       help="The agent's directory on the server [default: "
                       "~/markdown-manager-ops].")
REMOTE_PYTHON = click.option("--python", "python", envvar="REMOTE_PYTHON", show_envvar=True,
                             help="The server's python to build the agent's venv with "
                             "[default: python3].")


def ssh_options() -> SharedOptions:
    """HOST, SSH_CONFIG, ENV_FILE, ACCEPT_NEW_HOST_KEY (tunnel mode: nothing on the server)."""
    return SharedOptions(HOST, SSH_CONFIG, ENV_FILE, ACCEPT_NEW_HOST_KEY)


def agent_options() -> SharedOptions:
    """The SSH settings plus the agent's OPS_DIR and REMOTE_PYTHON (remote, schedule)."""
    return SharedOptions(HOST, SSH_CONFIG, ENV_FILE, OPS_DIR, REMOTE_PYTHON, ACCEPT_NEW_HOST_KEY)


def remote_settings(values: dict[str, Any], notice: Callable[[str], None]) -> Any:
    """The RemoteSettings of the shared SSH options (``ops_dir``/``python`` when given)."""
    from ..config import resolve_settings

    return resolve_settings(
        host=values.get("host") or None, ssh_config=values.get("ssh_config") or None,
        env_file=values.get("env_file") or None, ops_dir=values.get("ops_dir") or None,
        python=values.get("python") or None,
        accept_new_host_key=bool(values.get("accept_new_host_key")), notice=notice)
