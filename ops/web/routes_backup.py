"""The page, creating a backup (streamed to the browser as a download) and downloads."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from ..engine.results import ProgressCallback
from ..jobs.backup import run_backup
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


def _download(path: str, name: str) -> FileResponse:
    # FileResponse reads the file in chunks as the client takes them: flat memory.
    return FileResponse(path, filename=name, media_type="application/octet-stream",
                        headers={"Cache-Control": "no-store"})


@signed_in
async def index(request: Request, session: Session) -> Response:
    st = web(request)
    rows = await anyio.to_thread.run_sync(lambda: {p: st.catalog.rows(p) for p in PLACES})
    return render(request, "index.html", {
        "backups": rows["backups"], "safety": rows["safety"],
        "backup_dir": str(st.repo.path), "kept": st.settings.backup_dir is not None,
    }, session=session)


def backup_message(outcome: BackupOutcome) -> str:
    name = outcome.path.rsplit("/", 1)[-1]
    return (f"Backup {name} created: {len(outcome.tables)} tables, {outcome.total_rows} rows, "
            f"{outcome.size_bytes} bytes, every checksum verified. The download starts now.")


@signed_in
async def create_backup(request: Request, session: Session) -> Response:
    st = web(request)
    if await checked_form(request, session) is None:
        return error_response(request, CSRF_REFUSED, 403, session)

    def work(progress: ProgressCallback) -> BackupOutcome:
        return run_backup(st.transport, st.repo, BackupRequest(), progress)

    job = st.runner.start("backup", session.id, work)
    if wants_json(request):  # the page's script follows the job
        return JSONResponse({"job": url(request, "job", job_id=job.id)}, status_code=202)
    await anyio.to_thread.run_sync(job.done.wait)
    if job.state != "done":
        return error_response(request, job.error or "", job.status_code, session)
    outcome: BackupOutcome = job.result
    return _download(outcome.path, outcome.path.rsplit("/", 1)[-1])


@signed_in
async def download(request: Request, session: Session) -> Response:
    st = web(request)
    place, name = request.path_params["place"], request.path_params["name"]
    path = st.catalog.path_of(place, name)
    return _download(str(path), name)


def job_view(request: Request, job: Job) -> dict[str, object]:
    view: dict[str, object] = dict(job.snapshot())
    if job.state == "done" and job.kind == "backup":
        outcome: BackupOutcome = job.result
        view["message"] = backup_message(outcome)
        view["download_url"] = url(request, "download", place="backups",
                                   name=outcome.path.rsplit("/", 1)[-1])
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
