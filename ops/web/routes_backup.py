"""The page, creating a backup (streamed to the browser as a download) and downloads."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..engine.results import ProgressCallback
from ..errors import OpsError
from ..jobs.backup import run_backup
from ..repository.base import ReadAt, iter_read
from ..steps.results import BackupOutcome, BackupRequest
from .backups import PLACES
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
from .runner import Job
from .sessions import Session

log = logging.getLogger("ops.web")
# Read this much of a stored backup per step: one ranged GET from an object store, one pread
# locally; the response waits for the client before the next read (flat memory).
DOWNLOAD_BLOCK = 4 << 20


def _content_disposition(name: str) -> str:
    if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename*=utf-8''{quote(name)}"


def _stream(source: ReadAt, name: str) -> Iterator[bytes]:
    try:
        yield from iter_read(source, DOWNLOAD_BLOCK)
    except OpsError as exc:
        # The answer has begun: all that is left is to cut it short, so the browser reports
        # a failed download instead of keeping a truncated file.
        log.warning("download of %s failed: %s", name, exc)
        raise
    finally:
        source.close()


def _download(source: ReadAt, name: str) -> StreamingResponse:
    # A sync iterator: Starlette runs each read in a worker thread as the client takes them.
    return StreamingResponse(_stream(source, name), media_type="application/octet-stream",
                             headers={"Cache-Control": "no-store",
                                      "Content-Length": str(source.size),
                                      "Content-Disposition": _content_disposition(name)})


@signed_in
async def index(request: Request, session: Session) -> Response:
    st = web(request)
    rows: dict[str, list[object]] = {p: [] for p in PLACES}
    list_error = None
    for place in PLACES:
        try:
            rows[place] = list(await anyio.to_thread.run_sync(st.catalog.rows, place))
        except OpsError as exc:
            list_error = str(exc)
    return render(request, "index.html", {
        "backups": rows["backups"], "safety": rows["safety"], "list_error": list_error,
        "repo_url": st.repo.url, "repo_set": bool(st.settings.repo),
        "backup_dir": str(st.staging.path), "kept": st.settings.backup_dir is not None
        or st.staging.path != st.workspace.path / "backups",
        "encrypt": bool(st.settings.encrypt_to), "identity": bool(st.settings.identity),
    }, session=session)


def stored_name(outcome: BackupOutcome) -> str:
    """The new backup's name where the list has it: the repository's (``.mmops.age`` when
    encrypted), or the file's in the backup directory."""
    if outcome.published is not None:
        return outcome.published.name
    return outcome.path.rsplit("/", 1)[-1]


def backup_message(outcome: BackupOutcome) -> str:
    pub = outcome.published
    where = ""
    if pub is not None:
        where = f" Stored in {pub.repository}{' (age-encrypted)' if pub.encrypted else ''}."
    return (f"Backup {stored_name(outcome)} created: {len(outcome.tables)} tables, "
            f"{outcome.total_rows} rows, {outcome.size_bytes} bytes, every checksum "
            f"verified.{where} The download starts now.")


@signed_in
async def create_backup(request: Request, session: Session) -> Response:
    st = web(request)
    if await checked_form(request, session) is None:
        return error_response(request, CSRF_REFUSED, 403, session)

    def work(progress: ProgressCallback) -> BackupOutcome:
        # backup → verify → publish, the CLI's own steps (`mmops backup --repo R --encrypt-to K`)
        return run_backup(st.transport, st.staging, BackupRequest(publish=st.publish), progress)

    job = st.runner.start("backup", session.id, work)
    if wants_json(request):  # the page's script follows the job
        return JSONResponse({"job": url(request, "job", job_id=job.id)}, status_code=202)
    await anyio.to_thread.run_sync(job.done.wait)
    if job.state != "done":
        return error_response(request, job.error or "", job.status_code, session)
    name = stored_name(job.result)
    source = await anyio.to_thread.run_sync(st.catalog.open, "backups", name)
    return _download(source, name)


@signed_in
async def download(request: Request, session: Session) -> Response:
    st = web(request)
    place, name = request.path_params["place"], request.path_params["name"]
    source = await anyio.to_thread.run_sync(st.catalog.open, place, name)
    return _download(source, name)


def job_view(request: Request, job: Job) -> dict[str, object]:
    view: dict[str, object] = dict(job.snapshot())
    if job.state == "done" and job.kind == "backup":
        outcome: BackupOutcome = job.result
        view["message"] = backup_message(outcome)
        view["download_url"] = url(request, "download", place="backups",
                                   name=stored_name(outcome))
    elif job.state == "done" and job.kind == "review":
        view["message"] = "The plan is ready."
        view["review_url"] = url(request, "review", review_id=job.result.id)
    elif job.state == "done" and job.kind == "restore":
        from .routes_restore import restore_message

        view["message"] = restore_message(job.result)
    return view


@signed_in
async def job_status(request: Request, session: Session) -> Response:
    job = web(request).runner.get(request.path_params["job_id"], session.id)
    if job is None:
        return JSONResponse({"error": "No such job (it finished long ago, or the server "
                             "restarted)."}, status_code=404)
    return JSONResponse(job_view(request, job), status_code=200)
