"""musicgen-app: a local web page over the `MusicGen` API, whose music plays while it is being generated.

    settings.py   the page's form, checked, and the equivalent musicgen-generate command line
    media.py      results as WAV/FLAC bytes and spectrogram PNGs
    jobs.py       the queue: one generation at a time, streamed chunks, progress, cancel
    server.py     the FastAPI routes and the page (static/)
    cli.py        musicgen-app: the models served, the address, uvicorn

The top floor: it uses `musicgen` (the API) and `infra`, and nothing imports it.
"""
