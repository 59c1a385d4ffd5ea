"""Every state of the page in Debian's Chromium, at 1280 px and on a 390 px phone: axe-core
finds no violation, nothing overflows sideways, focus lands on each result, the status region
announces only what changed, each row's buttons say which backup they act on, and a reload
after a restore tells the truth. Screenshots of each state are kept (``screenshots``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ops.dburl import DbUrl
from tests.cli_helpers import mmops
from tests.web.conftest import WebServer, axe_violations, execute
from tests.web.test_web_browser import LONG, create_backup, fingerprint, review, shot, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.browser]

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


class States:
    """Checks one state of the page: a screenshot, axe-core, and (on a phone) no sideways
    overflow of the page or of any visible control."""

    def __init__(self, page: Page, axe: str, screenshots: Path, viewport: str) -> None:
        self.page, self.axe, self.dir, self.viewport = page, axe, screenshots, viewport
        self.seen: list[str] = []

    def check(self, name: str) -> None:
        self.page.wait_for_load_state()
        shot(self.page, self.dir, f"state-{self.viewport}-{len(self.seen):02d}-{name}")
        self.seen.append(name)
        violations = axe_violations(self.page, self.axe)
        assert violations == [], (name, violations)
        width = VIEWPORTS[self.viewport]["width"]
        overflow: dict[str, Any] = self.page.evaluate("""(width) => ({
            page: document.documentElement.scrollWidth,
            controls: [...document.querySelectorAll("a, button, input")]
              .filter((e) => e.offsetParent !== null)
              .map((e) => [e.textContent.trim() || e.name, e.getBoundingClientRect().right])
              .filter(([, right]) => right > width + 0.5),
        })""", width)
        assert overflow["page"] <= width and overflow["controls"] == [], (name, overflow)


def focused_text(page: Page) -> str:
    return str(page.evaluate("() => document.activeElement.textContent"))


def other_database_backup(make_db, tmp_path: Path) -> Path:
    other = make_db()
    execute(other, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    out = tmp_path / "other"
    r = mmops("backup", "-o", f"{out}/", url=other)
    assert r.returncode == 0, r.stderr
    (path,) = out.glob("*.mmops")
    return path


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_state_of_backup_and_restore_passes_axe_and_fits_the_screen(
        viewport: str, page: Page, web_server: WebServer, app_db: DbUrl, make_db,
        axe_source: str, tmp_path: Path, screenshots: Path) -> None:
    page.set_viewport_size(VIEWPORTS[viewport])
    states = States(page, axe_source, screenshots, viewport)
    base = web_server.base_url

    sign_in(page, web_server, "wrong password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong password")
    states.check("signin-wrong-password")
    sign_in(page, web_server)
    expect(page.get_by_role("button", name="Create backup")).to_be_visible()
    states.check("page-empty")

    before = fingerprint(app_db)
    path = create_backup(page, tmp_path)
    expect(page.get_by_role("status")).to_contain_text("every checksum verified")
    # focus moves to the result (not the page body)
    expect(page.locator(":focus")).to_contain_text("every checksum verified")
    states.check("backup-created")

    page.reload()
    # each row's actions are named for their backup (not eight identical "Download"s)
    expect(page.get_by_role("link", name=f"Download {path.name}", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name=f"Restore {path.name}", exact=True)).to_be_visible()
    states.check("backups-list")

    execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents")
    review(page, path)
    expect(page.get_by_role("heading", name="Review restore")).to_be_visible()
    field = page.get_by_label("Type the database name to confirm")
    # a phone must not capitalise or correct the database name
    assert field.get_attribute("autocapitalize") == "none"
    assert field.get_attribute("autocorrect") == "off"
    states.check("review-plan")

    field.fill(app_db.database.upper())
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("did not match")
    expect(field).to_be_focused()  # back to the field, to type it again
    states.check("typed-name-mismatch")

    field.fill(app_db.database)
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Restore finished", timeout=LONG)
    expect(page.locator(":focus")).to_contain_text("Restore finished")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("button", name="Restore", exact=True)).to_have_count(0)
    states.check("restore-finished")
    assert fingerprint(app_db) == before

    page.reload()  # what was done stays said: never "That did not work ... nothing changed"
    expect(page.get_by_role("heading", name="That did not work")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("Restore finished")
    expect(page.locator(":focus")).to_contain_text("Restore finished")
    states.check("restore-finished-reloaded")

    page.goto(base + "/")
    expect(page.get_by_role("heading", name="Safety backups")).to_be_visible()
    states.check("list-with-safety-backups")

    page.goto(base + f"/backups/backups/{app_db.database}-20200101T000000Z.mmops")
    expect(page.get_by_role("alert")).to_contain_text("does not exist")
    expect(page.locator(":focus")).to_contain_text("does not exist")
    states.check("error-no-such-backup")

    page.goto(base + "/")
    review(page, other_database_backup(make_db, tmp_path))
    expect(page.get_by_role("heading", name=re.compile("^Refused"))).to_be_visible()
    expect(page.locator(":focus")).to_contain_text("Refused")
    states.check("review-refused")
    assert len(states.seen) == 11


def test_the_status_region_announces_only_what_changed(
        page: Page, web_server: WebServer, app_db: DbUrl, tmp_path: Path) -> None:
    # Large enough that the backup takes several polls of its job.
    execute(app_db, "CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 8) AS body "
                    "FROM generate_series(1, 300000) g")
    sign_in(page, web_server)
    expect(page.get_by_role("button", name="Create backup")).to_be_visible()
    page.evaluate("""() => {
        window.statusChanges = [];
        new MutationObserver((records) => {
          for (const r of records) {
            window.statusChanges.push({
              added: [...r.addedNodes].map((n) => n.textContent),
              removed: [...r.removedNodes].map((n) => n.textContent),
            });
          }
        }).observe(document.getElementById("status"),
                   { childList: true, subtree: true, characterData: true });
    }""")
    create_backup(page, tmp_path)
    expect(page.get_by_role("status")).to_contain_text("every checksum verified")
    changes: list[dict[str, list[str]]] = page.evaluate("() => window.statusChanges")
    assert changes, "the status region never changed"
    reinserted = [c for c in changes if set(c["added"]) & set(c["removed"])]
    assert reinserted == [], reinserted[:3]
    added = [text for c in changes for text in c["added"]]
    assert len(added) == len(set(added)), added  # no line announced twice


def test_on_a_390_px_phone_no_page_is_wider_than_the_screen(
        page: Page, web_server: WebServer, app_db: DbUrl, make_db, tmp_path: Path,
        screenshots: Path) -> None:
    width = VIEWPORTS["phone"]["width"]
    page.set_viewport_size(VIEWPORTS["phone"])
    seen: dict[str, int] = {}

    def measure(name: str) -> None:
        page.wait_for_load_state()
        shot(page, screenshots, f"phone-{name}")
        seen[name] = int(page.evaluate("() => document.documentElement.scrollWidth"))

    sign_in(page, web_server)
    path = create_backup(page, tmp_path)
    review(page, path)  # a restore leaves a safety backup: both lists have rows
    page.get_by_label("Type the database name to confirm").fill(app_db.database)
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Restore finished", timeout=LONG)
    measure("restore-finished")
    page.goto(web_server.base_url + "/")
    measure("backups-list")
    for button in (page.get_by_role("link", name=re.compile("^Download")).first,
                   page.get_by_role("button", name=re.compile("^Restore")).first):
        box = button.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, box
    review(page, path)
    measure("review-plan")
    page.goto(web_server.base_url + "/")
    review(page, other_database_backup(make_db, tmp_path))
    measure("review-refused")
    assert seen and all(w <= width for w in seen.values()), seen
