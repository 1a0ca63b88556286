"""The generation queue: one job at a time on one worker thread, its audio streamed in chunks, cancellable.

A job moves queued -> running -> done, or to cancelled or failed (with the message the page shows). While it
runs, `chunks` grows with the streamed audio [B, C, n] and `progress`/`seconds_left` follow the LM's steps.
Cancel stops a running job after its current step (`MusicGen.generate_stream`'s progress callback raises).
"""
from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from .models import ModelShelf
from .settings import Settings, Upload

CHUNK_SECONDS = 0.5
KEPT_JOBS = 64


class Cancelled(Exception):
    """Raised inside generation when its job is cancelled."""


@dataclass
class Job:
    """One request and what became of it. wav: [B, C, N] once done."""

    number: int
    settings: Settings
    upload: Upload | None = None
    state: str = "queued"
    error: str | None = None
    progress: float = 0.0
    seconds_left: float | None = None
    sample_rate: int | None = None
    chunks: list[torch.Tensor] = field(default_factory=list)
    wav: torch.Tensor | None = None
    cancel_requested: bool = False

    @property
    def id(self) -> str:
        return str(self.number)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")


class JobQueue:
    """Jobs by id (the last KEPT_JOBS) and the worker thread that runs them in order of submission."""

    def __init__(self, shelf: ModelShelf) -> None:
        self.shelf = shelf
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="musicgen-app-worker", daemon=True)
        self._worker.start()

    def submit(self, settings: Settings, upload: Upload | None = None) -> Job:
        with self._lock:
            job = Job(next(self._ids), settings, upload)
            self.jobs[job.id] = job
            while len(self.jobs) > KEPT_JOBS:
                self.jobs.popitem(last=False)
        self._waiting.put(job)
        return job

    def position(self, job: Job) -> int:
        """Jobs ahead of a queued one (the running one included); 0 once it runs."""
        if job.state != "queued":
            return 0
        with self._lock:
            return sum(1 for other in self.jobs.values()
                       if other.state in ("queued", "running") and other.number < job.number)

    def cancel(self, job: Job) -> None:
        job.cancel_requested = True
        if job.state == "queued":
            job.state = "cancelled"

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job and wait (up to timeout seconds) for the worker to end."""
        for job in list(self.jobs.values()):
            self.cancel(job)
        self._waiting.put(None)
        self._worker.join(timeout)

    def _run(self) -> None:
        try:
            self.shelf.get(self.shelf.names[0])  # loaded before the first request asks for it
        except Exception:  # noqa: BLE001 - the first job that asks for it reports the failure
            traceback.print_exc()
        while (job := self._waiting.get()) is not None:
            if job.cancel_requested:
                job.state = "cancelled"
                continue
            job.state = "running"
            try:
                self._generate(job)
                job.state = "done"
            except Cancelled:
                job.state = "cancelled"
            except (ValueError, FileNotFoundError) as error:
                job.state, job.error = "failed", str(error)
            except Exception as error:  # noqa: BLE001 - a failed job must not stop the server
                traceback.print_exc()
                job.state, job.error = "failed", f"generation failed: {type(error).__name__}: {error}"

    def _generate(self, job: Job) -> None:
        settings = job.settings
        model = self.shelf.get(settings.model)
        job.sample_rate = model.sample_rate
        started = time.monotonic()

        def follow(done: int, total: int) -> None:
            if job.cancel_requested:
                raise Cancelled
            job.progress = done / total
            job.seconds_left = (time.monotonic() - started) / done * (total - done)

        continued = {} if job.upload is None else dict(
            prompt_wav=job.upload.wav[None].expand(len(settings.prompts), -1, -1),
            prompt_sample_rate=job.upload.sample_rate)
        stream = model.generate_stream(list(settings.prompts), settings.duration, CHUNK_SECONDS, progress=follow,
                                       **continued, **settings.sampling())
        for chunk in stream:
            job.chunks.append(chunk.detach().float().cpu())
        job.wav = torch.cat(job.chunks, dim=-1)
        job.progress, job.seconds_left = 1.0, 0.0
