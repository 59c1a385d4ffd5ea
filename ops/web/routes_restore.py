"""Restore: upload (or pick a stored backup) → the plan → the typed name → the restore.

Every rule comes from ``ops.jobs.restore`` and ``ops.policy.plan``: ``prepare_restore`` builds
the plan and refuses what the CLI refuses; ``confirm`` asks for the typed name exactly when the
plan needs it; ``execute`` takes the safety backup and restores in one transaction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..engine.results import ProgressCallback
from ..errors import OpsError, RestoreRefused
from ..interop.detect import AGE_MAGIC
from ..jobs.restore import PreparedRestore, confirm, execute, prepare_restore, resolve_backup_file
from ..policy.plan import Plan
from ..repository.base import Repository
from ..steps.results import RestoreOutcome
from .common import (
    CSRF_REFUSED,
    checked_form,
    error_response,
    render,
    signed_in,
    url,
    wants_json,
    web,
)
from .errors import UNEXPECTED
from .reviews import Review
from .sessions import Session
from .state import WebState
from .uploads import CsrfRejected, receive_upload

log = logging.getLogger("ops.web")
MODES = {
    "replace": "Replace: the database becomes equal to the backup (tables not in the backup "
               "disappear).",
    "create": "Create: everything is created in the database, which has no tables yet.",
    "data-only": "Data only: the listed tables are emptied and reloaded; the schema stays.",
    "sql-script": "SQL script: the dump runs as written, in one transaction.",
}
MISMATCH = "The typed name did not match the database name; nothing was changed."
REFUSED = ("This restore's plan was refused (see its reasons); nothing was changed. The web "
           "page does not override a refusal.")


def restore_message(outcome: RestoreOutcome) -> str:
    safety = (f" The safety backup taken before it is {Path(outcome.safety_backup).name}."
              if outcome.safety_backup else
              " No safety backup was needed: the database had no tables.")
    return (f"Restore finished: database {outcome.database} now holds the backup "
            f"({outcome.tables} tables, {outcome.rows_restored} rows; row check "
            f"{outcome.row_check}).{safety}")


NO_IDENTITY = (
    "Backup {name} is age-encrypted and this server has no identity to open it (start mmops "
    "web with AGE_IDENTITY=FILE, or restore it with mmops restore --identity FILE); nothing "
    "was changed."
)
UPLOAD_NO_IDENTITY = (
    "{name} is age-encrypted; decrypt it first (age -d -i KEY {name}) or start mmops web with "
    "AGE_IDENTITY=FILE; nothing was changed."
)


def _is_age(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(AGE_MAGIC)) == AGE_MAGIC


def _prepare(st: WebState, spec: str, repo: Repository, scratch: Path,
             progress: ProgressCallback | None) -> tuple[PreparedRestore, bool]:
    """The prepared restore and whether its plan refuses (then it was built with the refusals
    overridden only to show them; it is never executed).

    ``spec`` is a backup's name in ``repo`` or an uploaded file's path; the jobs layer fetches
    an object-store backup into ``scratch`` and decrypts an ``.age`` one there (AGE_IDENTITY).
    """
    path = resolve_backup_file(spec, repo, st.settings.database_url.database,
                               workdir=scratch, identity=st.settings.identity,
                               progress=progress)
    try:
        return prepare_restore(st.transport, str(path), repo, progress=progress), False
    except RestoreRefused:
        return prepare_restore(st.transport, str(path), repo, force=True), True


def open_review(st: WebState, owner: str, spec: str, repo: Repository, display: str,
                scratch: Path, progress: ProgressCallback | None = None) -> Review:
    """Prepare the restore of ``spec`` and keep it for its typed confirmation (a refused one
    too, to show why). On failure ``scratch`` goes, and the message names the file as the
    operator knows it, never by its private path on the server."""
    try:
        prepared, refused = _prepare(st, spec, repo, scratch, progress)
    except OpsError as exc:
        st.workspace.remove_dir(scratch)
        for attr in ("message", "hint"):
            text = getattr(exc, attr)
            if text:
                setattr(exc, attr, text.replace(spec, display).replace(f"{scratch}/", ""))
        raise
    except BaseException:
        st.workspace.remove_dir(scratch)
        raise
    if refused:
        st.workspace.remove_dir(scratch)  # never restored: its file is not needed
        return st.reviews.add(owner, prepared, display, None, refused=True)
    return st.reviews.add(owner, prepared, display, scratch)


def _show(request: Request, session: Session, review: Review) -> Response:
    """The review page; a refused plan is shown at once (409) and not kept."""
    if review.refused:
        web(request).reviews.remove(review)
        return render(request, "review.html", {"plan": review.prepared.plan, "refused": True,
                                               "file_name": review.display_name,
                                               "modes": MODES},
                      status_code=409, session=session)
    return RedirectResponse(url(request, "review", review_id=review.id), status_code=303)


async def _review_job(request: Request, session: Session, spec: str, repo: Repository,
                      display: str, scratch: Path) -> Response:
    """Check ``spec`` and prepare its plan as a job of the one-job runner (a large backup takes
    a while, and verifying competes with a backup or restore for the machine): the page's
    script follows it, a plain post waits for it. ``scratch`` goes if it cannot start."""
    st = web(request)

    def work(progress: ProgressCallback) -> Review:
        return open_review(st, session.id, spec, repo, display, scratch, progress)

    try:
        job = st.runner.start("review", session.id, work)
    except OpsError:
        st.workspace.remove_dir(scratch)
        raise
    if wants_json(request):
        return JSONResponse({"job": url(request, "job", job_id=job.id)}, status_code=202)
    await anyio.to_thread.run_sync(job.done.wait)
    if job.state != "done":
        return error_response(request, job.error or "", job.status_code, session)
    return _show(request, session, job.result)


@signed_in
async def upload(request: Request, session: Session) -> Response:
    st = web(request)
    st.runner.check_idle()  # before the body is read: a busy server takes no upload
    try:
        received = await receive_upload(
            request.headers.get("content-type"), request.stream(), file_field="backup",
            new_file=st.workspace.new_file, discard=st.workspace.discard,
            csrf_ok=session.csrf_ok,
        )
    except CsrfRejected:
        return error_response(request, CSRF_REFUSED, 403, session)
    except ClientDisconnect:
        log.info("an upload was cut off by the client; nothing was kept")
        return Response(status_code=400)  # nobody is left to read it
    if received.path is None or not received.filename:
        if received.path is not None:
            st.workspace.discard(received.path)
        if not session.csrf_ok(received.fields.get("csrf_token")):
            return error_response(request, CSRF_REFUSED, 403, session)
        return error_response(request, "Choose a backup file first; nothing was changed.", 400,
                              session)
    path, scratch = received.path, received.path.parent
    if await run_in_threadpool(_is_age, path):
        if not st.settings.identity:
            st.workspace.remove_dir(scratch)
            return error_response(request, UPLOAD_NO_IDENTITY.format(name=received.filename),
                                  409, session)
        if path.suffix != ".age":  # decrypted by its name, as every .mmops.age is
            path = path.rename(path.with_name(path.name + ".age"))
    return await _review_job(request, session, str(path), st.staging, received.filename,
                             scratch)


@signed_in
async def restore_stored(request: Request, session: Session) -> Response:
    """A list row's Restore: fetch (and decrypt) the stored backup as a job the page follows
    (a large object takes a while), then the same review as an upload."""
    st = web(request)
    form = await checked_form(request, session)
    if form is None:
        return error_response(request, CSRF_REFUSED, 403, session)
    name = form.get("name", "")
    repo = await run_in_threadpool(st.catalog.check, form.get("place", ""), name)
    if name.endswith(".age") and not st.settings.identity:
        return error_response(request, NO_IDENTITY.format(name=name), 409, session)
    return await _review_job(request, session, name, repo, name, st.workspace.new_dir())


def _review_or_none(request: Request, session: Session) -> Review | None:
    return web(request).reviews.get(request.path_params["review_id"], session.id)


GONE = ("This restore review is no longer open (it was cancelled, left over 30 minutes, or "
        "the server restarted since); start again from the page, whose safety backups show "
        "every restore that ran.")


def _outcome(request: Request, session: Session, review: Review) -> Response:
    """The page of a review whose restore ran (or is running): what happened, never a plan
    to confirm again."""
    if review.outcome is None:
        message, ok = ("This restore is running; reload the page to see its outcome.", True)
    else:
        message, ok = review.outcome.message, review.outcome.ok
    return render(request, "result.html", {"message": message, "ok": ok}, session=session)


@signed_in
async def review_page(request: Request, session: Session) -> Response:
    review = _review_or_none(request, session)
    if review is None:
        return error_response(request, GONE, 404, session)
    if review.busy or review.outcome is not None:
        return _outcome(request, session, review)
    return render(request, "review.html", {
        "plan": review.prepared.plan, "refused": review.refused, "review": review,
        "file_name": review.display_name, "modes": MODES,
    }, status_code=409 if review.refused else 200, session=session)


@signed_in
async def run_restore(request: Request, session: Session) -> Response:
    st = web(request)
    form = await checked_form(request, session)
    if form is None:
        return error_response(request, CSRF_REFUSED, 403, session)
    review = _review_or_none(request, session)
    if review is None:
        return error_response(request, GONE + " Nothing was changed.", 404, session)
    if review.busy or review.outcome is not None:  # sent twice: it runs once
        return _outcome(request, session, review)
    if review.refused:  # its page offers no Restore; a forged post gets no further
        return error_response(request, REFUSED, 409, session)
    typed = form.get("confirm_name", "").strip()

    def typed_name(plan: Plan) -> bool:
        return typed == plan.database

    try:
        confirm(review.prepared, typed_name)
    except RestoreRefused:
        return _refused(request, session, review, MISMATCH)

    def work(progress: ProgressCallback) -> RestoreOutcome:
        try:
            outcome = execute(st.transport, review.prepared, progress)
        except OpsError as exc:
            st.reviews.finish(review, str(exc), ok=False)  # the uploaded file goes with it
            raise
        except BaseException:
            st.reviews.finish(review, UNEXPECTED, ok=False)
            raise
        st.reviews.finish(review, restore_message(outcome), ok=True)
        return outcome

    review.busy = True
    try:
        job = st.runner.start("restore", session.id, work)
    except OpsError:
        review.busy = False
        raise
    if wants_json(request):
        return JSONResponse({"job": url(request, "job", job_id=job.id)}, status_code=202)
    await anyio.to_thread.run_sync(job.done.wait)
    message = restore_message(job.result) if job.state == "done" else job.error or ""
    return render(request, "result.html", {"message": message, "ok": job.state == "done"},
                  status_code=200 if job.state == "done" else job.status_code, session=session)


def _refused(request: Request, session: Session, review: Review, message: str) -> Response:
    if wants_json(request):  # the page's script puts focus back in the field
        return JSONResponse({"error": message, "field": "confirm_name"}, status_code=409)
    return render(request, "review.html", {
        "plan": review.prepared.plan, "refused": False, "review": review,
        "file_name": review.display_name, "modes": MODES, "error": message,
    }, status_code=409, session=session)


@signed_in
async def cancel(request: Request, session: Session) -> Response:
    form = await checked_form(request, session)
    if form is None:
        return error_response(request, CSRF_REFUSED, 403, session)
    review = _review_or_none(request, session)
    if review is not None and not review.busy:
        web(request).reviews.remove(review)
    return RedirectResponse(url(request, "index"), status_code=303)
