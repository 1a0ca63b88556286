"""The web server: the page (static/) and a small JSON API over the job queue.

    GET  /                                  the page
    GET  /api/info                          models, their defaults, the limits
    POST /api/jobs                          a form (prompts, duration, seed, top_k, top_p, temperature, cfg_coef,
                                            model, optional upload) -> {"id", "position"}, or 400 {"error"}
    GET  /api/jobs/{id}                     state, queue position, progress, seconds left, chunks made, results
    GET  /api/jobs/{id}/chunks/{i}          streamed chunk i of the first prompt: float32 mono samples
    POST /api/jobs/{id}/cancel
    GET  /api/jobs/{id}/audio/{row}.{wav|flac}, /api/jobs/{id}/spectrogram/{row}.png

The page loads nothing from elsewhere, and its Content-Security-Policy lets it fetch from this server only.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile

from infra.spectrogram_image import spectrogram_png

from .jobs import Job, JobQueue
from .media import AUDIO_FORMATS, audio_bytes
from .settings import (
    MAX_DURATION,
    MAX_PROMPTS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_SECONDS,
    BadInput,
    parse_settings,
    read_upload,
)

STATIC = Path(__file__).parent / "static"
SAME_ORIGIN_ONLY = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'"


def create_app(jobs: JobQueue) -> FastAPI:
    app = FastAPI(title="musicgen-app", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return response

    @app.exception_handler(BadInput)
    async def bad_input(_request: Request, error: BadInput) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info")
    def info() -> dict:
        return {"models": [jobs.shelf.describe(name) for name in jobs.shelf.names],
                "limits": {"max_duration": MAX_DURATION, "max_prompts": MAX_PROMPTS,
                           "max_upload_mb": MAX_UPLOAD_BYTES // 2**20, "max_upload_seconds": MAX_UPLOAD_SECONDS}}

    @app.post("/api/jobs")
    async def submit(request: Request) -> dict:
        try:
            form = await request.form(max_files=1, max_fields=16)
        except Exception as error:  # noqa: BLE001 - starlette raises its own kinds for malformed bodies
            raise BadInput(f"The form could not be read: {error}") from None
        file = form.get("upload")
        upload = None
        if isinstance(file, UploadFile) and file.filename:
            upload = read_upload(file.filename, await file.read(MAX_UPLOAD_BYTES + 1))
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        job = jobs.submit(parse_settings(fields, jobs.shelf.names, upload), upload)
        return {"id": job.id, "position": jobs.position(job)}

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str) -> dict:
        job = _job(jobs, job_id)
        return {"id": job.id, "state": job.state, "position": jobs.position(job), "progress": job.progress,
                "seconds_left": job.seconds_left, "chunks": len(job.chunks), "sample_rate": job.sample_rate,
                "error": job.error, "results": _results(jobs, job) if job.state == "done" else []}

    @app.get("/api/jobs/{job_id}/chunks/{index}")
    def chunk(job_id: str, index: int) -> Response:
        job = _job(jobs, job_id)
        if not 0 <= index < len(job.chunks):
            raise HTTPException(404, f"chunk {index} is not made yet ({len(job.chunks)} so far)")
        samples = job.chunks[index][0].mean(dim=0).contiguous().numpy().astype("<f4")
        return Response(samples.tobytes(), media_type="application/octet-stream")

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict:
        job = _job(jobs, job_id)
        jobs.cancel(job)
        return {"id": job.id, "state": job.state}

    @app.get("/api/jobs/{job_id}/audio/{row}.{kind}")
    def audio(job_id: str, row: int, kind: str) -> Response:
        if kind not in AUDIO_FORMATS:
            raise HTTPException(404, f"audio comes as {' or '.join(AUDIO_FORMATS)}")
        job = _done_job(jobs, job_id, row)
        name = f"{_file_name(job, row)}.{kind}"
        return Response(audio_bytes(job.wav[row], job.sample_rate, kind), media_type=AUDIO_FORMATS[kind][2],
                        headers={"Content-Disposition": f'inline; filename="{name}"'})

    @app.get("/api/jobs/{job_id}/spectrogram/{row}.png")
    def spectrogram(job_id: str, row: int) -> Response:
        job = _done_job(jobs, job_id, row)
        return Response(spectrogram_png(job.wav[row], job.sample_rate), media_type="image/png")

    return app


def _job(jobs: JobQueue, job_id: str) -> Job:
    job = jobs.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r} (the server keeps the last {len(jobs.jobs)} of this run)")
    return job


def _done_job(jobs: JobQueue, job_id: str, row: int) -> Job:
    job = _job(jobs, job_id)
    if job.state != "done" or not 0 <= row < job.wav.shape[0]:
        raise HTTPException(404, f"job {job_id} has no finished result {row}")
    return job


def _file_name(job: Job, row: int) -> str:
    words = "".join(c if c.isalnum() else "-" for c in job.settings.prompts[row].lower())[:40].strip("-")
    return f"{words or 'unconditional'}-seed{job.settings.seed}"


def _results(jobs: JobQueue, job: Job) -> list[dict]:
    base = f"/api/jobs/{job.id}"
    model_dir = jobs.shelf.paths[job.settings.model]
    return [{"row": row, "prompt": prompt, "seconds": job.wav.shape[-1] / job.sample_rate,
             "wav": f"{base}/audio/{row}.wav", "flac": f"{base}/audio/{row}.flac",
             "spectrogram": f"{base}/spectrogram/{row}.png", "settings": job.settings.as_dict(),
             "command": job.settings.command_line(model_dir)}
            for row, prompt in enumerate(job.settings.prompts)]
