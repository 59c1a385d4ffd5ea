"""The engine here, the server's database through an SSH port forward; nothing installed there.

``open_tunnel(settings, safety_dir)`` opens the SSH connection, reads DATABASE_URL from the
server's env file into memory, opens and checks the forward, and yields a DirectTransport whose
URL points at the forward; everything is closed however the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..config import RemoteSettings
from ..dburl import refused_credentials_hint
from ..errors import AuthenticationError
from .direct import DirectTransport
from .tunnel_session import TunnelSession, tunnel_session


class TunnelTransport(DirectTransport):
    def __init__(self, session: TunnelSession, safety_dir: Path) -> None:
        super().__init__(session.url, safety_dir, label=session.ssh)
        self.session = session


@contextlib.contextmanager
def open_tunnel(settings: RemoteSettings, safety_dir: Path) -> Iterator[TunnelTransport]:
    with tunnel_session(settings) as session:
        try:
            yield TunnelTransport(session, safety_dir)
        except AuthenticationError as exc:  # the URL came from the server's env file: say which
            raise AuthenticationError(
                exc.message, hint=refused_credentials_hint(settings.env_file,
                                                           settings.host_label)) from exc
