"""Delivering an event to every target. A target that cannot be reached is reported as a
Delivery (one sentence naming it by its label), never raised: the caller decides what a
failed notification means (a scheduled backup stays successful; ``notify test`` fails)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import OpsError
from .event import Event
from .targets import Target

TIMEOUT_S = 15.0

class NotifyFailed(OpsError):
    """At least one notification target did not accept the notification."""

    exit_code = 14


@dataclass(frozen=True)
class Delivery:
    target: str  # the label
    ok: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _post_webhook(target: Target, event: Event, timeout: float) -> str | None:
    import requests

    try:
        res = requests.post(target.url, json=event.payload(), timeout=timeout,
                            allow_redirects=False,
                            headers={"User-Agent": f"mmops/{event.payload()['version']}"})
    except requests.Timeout:
        return f"{target.label} did not answer within {timeout:g} s"
    except requests.RequestException as exc:
        # the exception's text holds the URL: name only its kind
        return f"{target.label} could not be reached ({type(exc).__name__})"
    if not 200 <= res.status_code < 300:
        return f"{target.label} answered HTTP {res.status_code}"
    return None


def _send_apprise(target: Target, event: Event, timeout: float) -> str | None:
    import apprise

    sender = apprise.Apprise()
    if not sender.add(target.url):
        return f"{target.label} is not a valid apprise URL"
    for service in sender:
        if hasattr(service, "socket_connect_timeout"):
            service.socket_connect_timeout = timeout
        if hasattr(service, "socket_read_timeout"):
            service.socket_read_timeout = timeout
    ok = sender.notify(body=event.message, title=event.title,
                       notify_type=apprise.NotifyType(event.severity))
    return None if ok else f"{target.label} did not accept the notification"


def send(event: Event, targets: list[Target], *, timeout: float = TIMEOUT_S) -> list[Delivery]:
    """Send ``event`` to each target in turn; one Delivery per target."""
    out = []
    for target in targets:
        post = _post_webhook if target.kind == "webhook" else _send_apprise
        try:
            error = post(target, event, timeout)
        except Exception as exc:  # a plugin's own bug must not end a backup run
            error = f"{target.label} failed ({type(exc).__name__})"
        out.append(Delivery(target.label, error is None, error))
    return out


def failures_sentence(deliveries: list[Delivery]) -> str | None:
    """One sentence about the targets that failed, or None when all were delivered."""
    failed = [d.error for d in deliveries if not d.ok]
    if not failed:
        return None
    return "Notification not delivered: " + "; ".join(str(f) for f in failed) + "."
