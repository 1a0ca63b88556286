"""musicgen-app inside a test: the real server on a free local port (uvicorn in a thread), and headless Chromium.

Chromium is Debian's (/usr/bin/chromium, `apt-get install chromium`), driven by Playwright without its own browser
download; the flags keep it from calling out (this machine refuses those connections) and it gets a fresh profile.
"""
from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator

from pathlib import Path

import uvicorn

from musicgen import MusicGen
from webapp.jobs import JobQueue
from webapp.models import ModelShelf
from webapp.server import create_app

from tiny_models import save_tiny_musicgen, tiny_istft_codec

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required"]


def save_app_model(path: Path) -> Path:
    """The tiny LM (windows of 297 frames) with an inverse-STFT codec at 50 frames/s, as the default model's: a second
    of audio is 50 steps. Saved under path; returns its directory."""
    tiny = MusicGen.from_pretrained(save_tiny_musicgen(path / "tiny", max_positions=300), device="cpu")
    MusicGen(tiny.config, tiny.lm, tiny.conditioner, tiny_istft_codec((8, 5, 4))).save_pretrained(path / "app")
    return path / "app"


@contextlib.contextmanager
def serve(shelf: ModelShelf) -> Iterator[tuple[str, JobQueue]]:
    """The app on 127.0.0.1 at a free port: yields (its base URL, its job queue); stops it after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    jobs = JobQueue(shelf)
    server = uvicorn.Server(uvicorn.Config(create_app(jobs), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app's server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", jobs
    finally:
        jobs.stop()
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium browser context with a fresh profile (Playwright's sync API); any failure to start raises."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                                args=CHROMIUM_FLAGS)
        try:
            yield context
        finally:
            context.close()
