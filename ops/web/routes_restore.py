"""Restore: upload (or pick a stored backup) → the plan → the typed name → the restore.

Every rule comes from ``ops.jobs.restore`` and ``ops.policy.plan``: ``prepare_restore`` builds
the plan and refuses what the CLI refuses; ``confirm`` asks for the typed name exactly when the
plan needs it; ``execute`` takes the safety backup and restores in one transaction.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
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
from .errors import http_status
from .reviews import Review
from .sessions import Session
from .state import WebState
from .uploads import CsrfRejected, receive_upload

MODES = {
    "replace": "Replace: the database becomes equal to the backup (tables not in the backup "
               "disappear).",
    "create": "Create: everything is created in the database, which has no tables yet.",
    "data-only": "Data only: the listed tables are emptied and reloaded; the schema stays.",
    "sql-script": "SQL script: the dump runs as written, in one transaction.",
}
MISMATCH = "The typed name did not match the database name; nothing was changed."


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


def _prepare(st: WebState, spec: str, repo: Repository, scratch: Path
             ) -> tuple[PreparedRestore | None, Plan | None]:
    """The prepared restore, or — when the plan refuses — the plan to show its refusals.

    ``spec`` is a backup's name in ``repo`` or an uploaded file's path; the jobs layer fetches
    an object-store backup into ``scratch`` and decrypts an ``.age`` one there (AGE_IDENTITY).
    """
    path = resolve_backup_file(spec, repo, st.settings.database_url.database,
                               workdir=scratch, identity=st.settings.identity)
    try:
        return prepare_restore(st.transport, str(path), repo), None
    except RestoreRefused:
        # Built again with the refusals overridden only to show them; never executed.
        shown = prepare_restore(st.transport, str(path), repo, force=True)
        return None, shown.plan


async def _review(request: Request, session: Session, spec: str, repo: Repository,
                  display: str, scratch: Path) -> Response:
    st = web(request)
    try:
        prepared, refused = await run_in_threadpool(_prepare, st, spec, repo, scratch)
    except OpsError as exc:
        st.workspace.remove_dir(scratch)
        # Name the file as the operator knows it, never by its private path on the server.
        message = str(exc).replace(spec, display).replace(f"{scratch}/", "")
        return error_response(request, message, http_status(exc), session)
    if prepared is None:
        st.workspace.remove_dir(scratch)
        return render(request, "review.html", {"plan": refused, "refused": True,
                                               "file_name": display, "modes": MODES},
                      status_code=409, session=session)
    review = st.reviews.add(session.id, prepared, display, scratch)
    return RedirectResponse(url(request, "review", review_id=review.id), status_code=303)


@signed_in
async def upload(request: Request, session: Session) -> Response:
    st = web(request)
    try:
        received = await receive_upload(
            request.headers.get("content-type"), request.stream(), file_field="backup",
            new_file=st.workspace.new_file, discard=st.workspace.discard,
            csrf_ok=session.csrf_ok,
        )
    except CsrfRejected:
        return error_response(request, CSRF_REFUSED, 403, session)
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
    return await _review(request, session, str(path), st.staging, received.filename, scratch)


@signed_in
async def restore_stored(request: Request, session: Session) -> Response:
    st = web(request)
    form = await checked_form(request, session)
    if form is None:
        return error_response(request, CSRF_REFUSED, 403, session)
    name = form.get("name", "")
    repo = await run_in_threadpool(st.catalog.check, form.get("place", ""), name)
    if name.endswith(".age") and not st.settings.identity:
        return error_response(request, NO_IDENTITY.format(name=name), 409, session)
    return await _review(request, session, name, repo, name, st.workspace.new_dir())


def _review_or_none(request: Request, session: Session) -> Review | None:
    return web(request).reviews.get(request.path_params["review_id"], session.id)


GONE = ("This restore review is no longer open (it was restored, cancelled or left too long); "
        "nothing was changed. Start again from the page.")


@signed_in
async def review_page(request: Request, session: Session) -> Response:
    review = _review_or_none(request, session)
    if review is None:
        return error_response(request, GONE, 404, session)
    return render(request, "review.html", {
        "plan": review.prepared.plan, "refused": False, "review": review,
        "file_name": review.display_name, "modes": MODES,
    }, session=session)


@signed_in
async def run_restore(request: Request, session: Session) -> Response:
    st = web(request)
    form = await checked_form(request, session)
    if form is None:
        return error_response(request, CSRF_REFUSED, 403, session)
    review = _review_or_none(request, session)
    if review is None or review.busy:
        return error_response(request, GONE, 404, session)
    typed = form.get("confirm_name", "").strip()

    def typed_name(plan: Plan) -> bool:
        return typed == plan.database

    try:
        confirm(review.prepared, typed_name)
    except RestoreRefused:
        return _refused(request, session, review, MISMATCH)

    def work(progress: ProgressCallback) -> RestoreOutcome:
        try:
            return execute(st.transport, review.prepared, progress)
        finally:
            st.reviews.remove(review)  # the uploaded file goes with it

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
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=409)
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
