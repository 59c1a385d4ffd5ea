"""``NOTIFY`` → targets. One or more URLs separated by whitespace:

* a plain ``http://`` / ``https://`` URL that is no known service's → a JSON webhook (POST);
* any URL apprise knows (``slack://``, ``tgram://``, ``mailto://``, ``json://``, … and the
  services' own webhook addresses such as ``https://hooks.slack.com/services/…``) → apprise.

A target is named by ``label`` — the service (and a webhook's host), never the path, query
or credentials, where tokens live.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from ..errors import UsageError


@dataclass(frozen=True)
class Target:
    kind: str  # "webhook" | "apprise"
    label: str  # safe to print
    url: str = field(repr=False)  # the secret: never rendered

    def __str__(self) -> str:
        return self.label


def _apprise_service(url: str) -> str | None:
    """The apprise service name of ``url``, or None when apprise does not know it."""
    import apprise

    instance = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if not instance:
        return None
    return str(getattr(instance, "service_name", None) or type(instance).__name__)


def _webhook_label(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"webhook {parts.scheme}://{host}{port}/…"


def parse_targets(text: str | None) -> list[Target]:
    """The targets of a ``NOTIFY`` value (empty: none). A URL that is neither a webhook nor
    an apprise URL is a UsageError that names its position and scheme, never the URL."""
    targets = []
    for n, url in enumerate((text or "").split(), start=1):
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            raise UsageError(f"NOTIFY target #{n} is not a URL.") from None
        scheme = parts.scheme.lower()
        service = _apprise_service(url) if scheme else None
        if service is not None:
            targets.append(Target("apprise", f"{service} ({scheme}://…)", url))
        elif scheme in ("http", "https") and parts.hostname:
            try:
                targets.append(Target("webhook", _webhook_label(parts), url))
            except ValueError:  # a port that is not a number
                raise UsageError(f"NOTIFY target #{n} ({scheme}://) has a bad port.") from None
        else:
            shown = f"{scheme}://" if scheme else "no scheme"
            raise UsageError(
                f"NOTIFY target #{n} ({shown}) is neither an http(s) webhook nor a "
                "notification URL apprise knows (slack://, tgram://, mailto://, …)."
            )
    return targets
