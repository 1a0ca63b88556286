"""musicgen-app in a real browser (headless Chromium): generate, stream, play, bad input, two tabs, cancel.

The server runs a tiny random model (8 kHz, 50 frames/s, windows of 297 frames); the browser must start (a failing
start fails these tests).
"""
from __future__ import annotations

import time

import pytest

from webapp.models import ModelShelf

from app_server import chromium, save_app_model, serve
from tiny_models import TINY_SAMPLE_RATE

# Decodes the audio element's file in the page: {seconds, peak, sampleRate}.
DECODE_AUDIO = """async (audio) => {
  const data = await (await fetch(audio.src)).arrayBuffer();
  const buffer = await new OfflineAudioContext(1, 1, 8000).decodeAudioData(data);
  const samples = buffer.getChannelData(0);
  let peak = 0;
  for (const value of samples) peak = Math.max(peak, Math.abs(value));
  return {seconds: buffer.duration, peak, sampleRate: buffer.sampleRate};
}"""
PLAYS = """async (audio) => {
  await audio.play();
  const start = performance.now();
  while (audio.currentTime === 0 && performance.now() - start < 5000) await new Promise(r => setTimeout(r, 50));
  const time = audio.currentTime;
  audio.pause();
  return time;
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    model = save_app_model(tmp_path_factory.mktemp("app"))
    with serve(ModelShelf([model], include_default=False)) as (url, jobs):
        yield url, jobs


@pytest.fixture(scope="module")
def browser():
    with chromium() as context:
        yield context


def open_page(browser, url: str):
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-state='idle']")
    return page


def generate(page, prompts: str, duration: str) -> None:
    page.fill("#prompts", prompts)
    page.fill("#duration", duration)
    page.fill("#seed", "5")
    page.click("#generate")


def test_a_prompt_streams_then_plays_with_its_spectrogram(app, browser):
    url, _ = app
    page = open_page(browser, url)
    generate(page, "an upbeat piano tune", "2")
    page.wait_for_selector("body[data-state='done']", timeout=60_000)
    assert float(page.get_attribute("body", "data-streamed-seconds")) == pytest.approx(2.0, abs=1e-3)
    result = page.locator(".result").first
    decoded = result.locator("audio").evaluate(DECODE_AUDIO)
    assert decoded["seconds"] == pytest.approx(2.0, abs=1e-3) and decoded["sampleRate"] == TINY_SAMPLE_RATE
    assert decoded["peak"] > 1e-3
    assert result.locator("audio").evaluate(PLAYS) > 0
    image = result.locator("img.spectrogram")
    image.wait_for()
    assert page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    command = result.locator("code").inner_text()
    assert "musicgen-generate --text 'an upbeat piano tune' --duration 2 --seed 5" in command
    page.close()


def test_a_bad_duration_shows_its_message(app, browser):
    url, _ = app
    page = open_page(browser, url)
    generate(page, "lo-fi piano", "0")
    page.wait_for_function("() => document.getElementById('message').textContent.length > 0")
    assert "Duration must be more than 0 and at most 120 seconds" in page.inner_text("#message")
    generate(page, "", "2")
    page.wait_for_function("() => document.getElementById('message').textContent.includes('prompt')")
    assert "Enter at least one prompt" in page.inner_text("#message")
    page.set_input_files("#upload", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not audio"}])
    generate(page, "lo-fi piano", "2")
    page.wait_for_function("() => document.getElementById('message').textContent.includes('notes.txt')")
    assert "'notes.txt' is not an audio file" in page.inner_text("#message")
    assert page.get_attribute("body", "data-state") == "idle"
    page.close()


def test_two_pages_at_once_both_get_their_results(app, browser):
    url, _ = app
    first, second = open_page(browser, url), open_page(browser, url)
    generate(first, "slow strings", "1")
    generate(second, "fast drums\nbright organ", "1")
    for page in (first, second):
        page.wait_for_selector("body[data-state='done']", timeout=60_000)
    assert first.locator(".result h3").all_inner_texts() == ["slow strings"]
    assert second.locator(".result h3").all_inner_texts() == ["fast drums", "bright organ"]
    first.close()
    second.close()


def test_cancel_stops_a_long_generation_within_a_second(app, browser):
    url, jobs = app
    page = open_page(browser, url)
    generate(page, "a very long ambient drone", "120")
    page.wait_for_function("() => Number(document.body.dataset.streamedSeconds) > 0", timeout=60_000)
    assert "s left" in page.inner_text("#status-text") and page.get_attribute("#progress", "value") != "0"
    start = time.monotonic()
    page.click("#cancel")
    page.wait_for_selector("body[data-state='cancelled']", timeout=5_000)
    assert time.monotonic() - start < 1.0
    assert "Cancelled" in page.inner_text("#message")
    job = list(jobs.jobs.values())[-1]
    assert job.state == "cancelled" and job.progress < 0.5
    page.close()
