"""NOTIFY targets: parsed without ever echoing a URL, delivered for real over TCP to a local
receiver (our JSON webhook and apprise's json://), an unreachable target reported in one
sentence naming it by its label, and ``mmops notify test`` through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ops.errors import UsageError
from ops.notify import Event, parse_targets, send
from ops.notify.send import failures_sentence
from tests.notify.receiver import Receiver, closed_port

MMOPS = str(Path(sys.executable).with_name("mmops"))
TOKEN = "S3cr3tT0ken4242abcdefXYZ"  # the shape of a Slack/Telegram token part


def test_plain_http_urls_are_webhooks_and_service_urls_go_to_apprise() -> None:
    targets = parse_targets(f"https://alerts.example.com/hook/{TOKEN}  slack://T1/B2/{TOKEN}\n"
                            f"tgram://123456:{TOKEN}/987 mailto://ops:{TOKEN}@example.com "
                            f"https://hooks.slack.com/services/T1/B2/{TOKEN}")
    assert [(t.kind, t.label) for t in targets] == [
        ("webhook", "webhook https://alerts.example.com/…"),
        ("apprise", "Slack (slack://…)"),
        ("apprise", "Telegram (tgram://…)"),
        ("apprise", "E-Mail (mailto://…)"),
        ("apprise", "Slack (https://…)"),  # a service's own webhook address: its format
    ]
    assert all(TOKEN not in f"{t} {t!r}" for t in targets)
    assert parse_targets("") == [] and parse_targets(None) == []


@pytest.mark.parametrize("bad", [f"nosuch://{TOKEN}", TOKEN, f"http://h:{TOKEN}/x"])
def test_a_bad_target_is_refused_naming_its_position_never_its_text(bad: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_targets(f"http://127.0.0.1:9/ok {bad}")
    assert str(err.value).startswith("NOTIFY target #2")
    assert TOKEN not in str(err.value)


def test_the_json_webhook_arrives_with_the_events_fields(receiver: Receiver) -> None:
    event = Event("backup", "ok", "app.example", "db-20261202T020000Z.mmops: 1234 bytes",
                  database="markdown_manager", details={"backup": {"size_bytes": 1234}})
    deliveries = send(event, parse_targets(receiver.url(f"/hook/{TOKEN}")))
    assert [d.ok for d in deliveries] == [True]
    (got,) = receiver.wait_for(1)
    assert got.path == f"/hook/{TOKEN}" and got.content_type == "application/json"
    body = got.body
    assert body["source"] == "mmops" and body["event"] == "backup" and body["result"] == "ok"
    assert body["ok"] is True and body["host"] == "app.example"
    assert body["database"] == "markdown_manager"
    assert body["message"] == "db-20261202T020000Z.mmops: 1234 bytes"
    assert body["text"].startswith("Scheduled backup OK on app.example (markdown_manager): ")
    assert body["details"] == {"backup": {"size_bytes": 1234}} and body["time"].endswith("+00:00")


def test_an_apprise_target_is_delivered_by_apprise(receiver: Receiver) -> None:
    event = Event("backup", "failed", "app", "The database refused the connection.")
    url = receiver.url(f"/apprise/{TOKEN}", scheme="json")
    assert [d.ok for d in send(event, parse_targets(url))] == [True]
    (got,) = receiver.wait_for(1)
    assert got.path == f"/apprise/{TOKEN}"
    assert got.body["type"] == "failure"  # apprise's own JSON format
    assert got.body["title"] == "Scheduled backup FAILED on app"
    assert got.body["message"] == "The database refused the connection."


def test_unreachable_and_refusing_targets_are_one_sentence_each_without_the_url(
    receiver: Receiver,
) -> None:
    receiver.status = 500
    port = closed_port()
    targets = parse_targets(f"http://127.0.0.1:{port}/{TOKEN} json://127.0.0.1:{port}/{TOKEN} "
                            f"{receiver.url('/' + TOKEN)}")
    deliveries = send(Event("backup", "ok", "h", "m"), targets, timeout=5)
    assert [d.ok for d in deliveries] == [False, False, False]
    sentence = failures_sentence(deliveries)
    assert sentence == (
        f"Notification not delivered: webhook http://127.0.0.1:{port}/… could not be reached "
        f"(ConnectionError); JSON (json://…) did not accept the notification; webhook "
        f"http://127.0.0.1:{receiver.port}/… answered HTTP 500.")
    assert TOKEN not in sentence


def test_apprises_own_log_records_never_reach_the_processs_logging() -> None:
    """apprise logs "An invalid Slack Token (…) was specified" and full URLs; a process that
    configured logging (mmops web does, at INFO) must not print them."""
    port = closed_port()
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from ops.errors import UsageError\n"
        "from ops.notify import Event, parse_targets, send\n"
        f"try: parse_targets('slack://T1/B2/{TOKEN[:7]}-bad')\n"
        "except UsageError as e: print(e)\n"
        f"print(send(Event('backup', 'ok', 'h', 'm'), parse_targets("
        f"'json://127.0.0.1:{port}/{TOKEN}'), timeout=3)[0].error)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "JSON (json://…) did not accept the notification"
    assert TOKEN[:7] not in res.stdout + res.stderr


def _mmops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MMOPS, *args], env=env, capture_output=True, text=True, timeout=60)


def test_mmops_notify_test_sends_to_every_target_and_never_prints_a_token(
    receiver: Receiver,
) -> None:
    import os

    notify = f"{receiver.url('/hook/' + TOKEN)} {receiver.url('/aj/' + TOKEN, scheme='json')}"
    env = {**os.environ, "NOTIFY": notify}
    res = _mmops("notify", "test", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert TOKEN not in res.stdout + res.stderr
    assert f"delivered  webhook http://127.0.0.1:{receiver.port}/…" in res.stdout
    assert "delivered  JSON (json://…)" in res.stdout
    got = receiver.wait_for(2)
    assert {g.path for g in got} == {f"/hook/{TOKEN}", f"/aj/{TOKEN}"}
    webhook = next(g for g in got if g.path.startswith("/hook/"))
    assert webhook.body["event"] == "test" and webhook.body["result"] == "test"


def test_mmops_notify_test_fails_with_one_sentence_when_a_target_is_unreachable(
    receiver: Receiver,
) -> None:
    import os

    port = closed_port()
    env = {**os.environ, "NOTIFY": f"{receiver.url('/ok')} http://127.0.0.1:{port}/{TOKEN}"}
    res = _mmops("notify", "test", env=env)
    assert res.returncode == 14, res.stdout + res.stderr
    assert TOKEN not in res.stdout + res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: Notification not delivered: webhook http://127.0.0.1:{port}/… could not be "
        "reached (ConnectionError).")
    assert len(receiver.wait_for(1)) == 1  # the reachable one still got it


def test_mmops_notify_test_without_notify_is_a_usage_error() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "NOTIFY"}
    res = _mmops("notify", "test", env=env)
    assert res.returncode == 2
    assert "NOTIFY" in res.stderr
