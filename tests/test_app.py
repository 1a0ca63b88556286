"""musicgen-app over HTTP (no browser): form checks, uploads, the equivalent command line, a server that survives."""
from __future__ import annotations

import io
import shlex
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile

from musicgen import cli
from webapp import cli as app_cli
from webapp.models import ModelShelf
from webapp.settings import MAX_UPLOAD_BYTES, BadInput, parse_settings

from app_server import save_app_model, serve
from tiny_models import TINY_SAMPLE_RATE

STATIC = Path(__file__).resolve().parents[1] / "webapp" / "static"
FORM = dict(prompts="an upbeat piano tune\n\n  slow strings  ", duration="1", seed="4", top_k="8", top_p="0",
            temperature="1", cfg_coef="3", model="app")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_app_model(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def app(model_dir):
    with serve(ModelShelf([model_dir], include_default=False)) as (url, jobs):
        yield url, jobs


def submit(url: str, form: dict, upload: tuple[str, bytes] | None = None) -> requests.Response:
    files = None if upload is None else {"upload": upload}
    return requests.post(f"{url}/api/jobs", data=form, files=files, timeout=30)


def finished(url: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get(f"{url}/api/jobs/{job_id}", timeout=10).json()
        if status["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def wav_bytes(seconds: float, sample_rate: int = TINY_SAMPLE_RATE) -> bytes:
    buffer = io.BytesIO()
    tone = 0.3 * np.sin(np.arange(int(seconds * sample_rate)) * 0.05).astype(np.float32)
    soundfile.write(buffer, tone, sample_rate, format="WAV")
    return buffer.getvalue()


def test_a_form_parses_to_settings():
    settings = parse_settings(FORM, ["app"])
    assert settings.prompts == ("an upbeat piano tune", "slow strings") and settings.duration == 1.0
    assert (settings.seed, settings.top_k, settings.cfg_coef) == (4, 8, 3.0)
    assert 0 <= parse_settings({**FORM, "seed": " "}, ["app"]).seed < 2**31


@pytest.mark.parametrize("field, value, message", [
    ("prompts", " \n ", "Enter at least one prompt"),
    ("prompts", "x\n" * 9, "At most 8 prompts"),
    ("duration", "0", "Duration must be more than 0 and at most 120 seconds"),
    ("duration", "121", "Duration must be more than 0 and at most 120 seconds"),
    ("duration", "ten", "Duration must be a number"),
    ("duration", "nan", "Duration must be a finite number"),
    ("seed", "-1", "Seed must be a whole number >= 0"),
    ("seed", "1.5", "Seed must be a whole number"),
    ("top_p", "2", "Top_p must be in [0, 1]"),
    ("temperature", "-1", "Temperature must be a finite number >= 0"),
    ("model", "../../etc", "Unknown model '../../etc'; this server has app"),
])
def test_bad_fields_are_named(field, value, message):
    with pytest.raises(BadInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_settings({**FORM, field: value}, ["app"])


def test_results_come_with_files_and_the_command_line_that_makes_them(app, model_dir, tmp_path):
    url, _ = app
    reply = submit(url, FORM)
    assert reply.status_code == 200, reply.text
    status = finished(url, reply.json()["id"])
    assert status["state"] == "done" and [r["prompt"] for r in status["results"]] == ["an upbeat piano tune",
                                                                                     "slow strings"]
    command = status["results"][1]["command"]
    assert command.startswith("musicgen-generate --text 'an upbeat piano tune' --text 'slow strings' --duration 1")
    cli.main(shlex.split(command)[1:] + ["--out-dir", str(tmp_path), "--quiet"])
    made_by_cli = sorted(tmp_path.glob("*.wav"))
    for result, path in zip(status["results"], sorted(made_by_cli, key=lambda p: "slow" in p.name)):
        app_audio, rate = soundfile.read(io.BytesIO(requests.get(url + result["wav"], timeout=10).content))
        cli_audio, _ = soundfile.read(path)
        assert rate == TINY_SAMPLE_RATE and len(app_audio) == TINY_SAMPLE_RATE
        assert np.abs(app_audio).max() > 1e-3 and np.abs(app_audio - cli_audio).max() <= 2 / 32768
        flac, _ = soundfile.read(io.BytesIO(requests.get(url + result["flac"], timeout=10).content))
        assert np.array_equal(flac, app_audio)
    png = requests.get(url + status["results"][0]["spectrogram"], timeout=10).content
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[1] == 80


def test_a_continuation_starts_from_the_upload(app):
    url, _ = app
    status = finished(url, submit(url, {**FORM, "duration": "2"}, ("riff.wav", wav_bytes(0.6))).json()["id"])
    assert status["state"] == "done"
    assert all(result["seconds"] == 2.0 for result in status["results"])
    assert "--continue-from riff.wav" in status["results"][0]["command"]


@pytest.mark.parametrize("upload, message", [
    (("notes.txt", b"not audio at all"), "'notes.txt' is not an audio file"),
    (("long.wav", wav_bytes(61)), "'long.wav' is 61.0 s long; at most 60 s"),
    (("huge.wav", b"\0" * (MAX_UPLOAD_BYTES + 10)), "The upload is 20.0 MB; at most 20 MB"),
    (("riff.wav", wav_bytes(1.5)), "Duration must be longer than the uploaded audio (1.50 s)"),
])
def test_bad_uploads_are_refused_with_a_message(app, upload, message):
    url, _ = app
    reply = submit(url, FORM, upload)
    assert reply.status_code == 400 and message in reply.json()["error"]


def test_the_server_survives_bad_requests_and_failed_jobs(app):
    url, _ = app
    assert requests.get(f"{url}/api/jobs/999", timeout=10).status_code == 404
    assert requests.get(f"{url}/api/jobs/abc/chunks/0", timeout=10).status_code == 404
    assert requests.post(f"{url}/api/jobs", data=b"\xff\x00", timeout=10,
                         headers={"Content-Type": "multipart/form-data; boundary=x"}).status_code == 400
    failed = finished(url, submit(url, {**FORM, "duration": "0.001"}).json()["id"])
    assert failed["state"] == "failed" and "shorter than one frame" in failed["error"]
    assert finished(url, submit(url, FORM).json()["id"])["state"] == "done"


def test_the_page_asks_nothing_of_other_machines(app):
    url, _ = app
    page = requests.get(url, timeout=10)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for path in STATIC.iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//" + "cdn" not in text, path.name


def test_the_command_refuses_a_missing_model_directory(tmp_path):
    with pytest.raises(SystemExit, match="no model directory at"):
        app_cli.main(["--model", str(tmp_path / "missing")])
