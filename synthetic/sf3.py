"""SF3 SoundFonts (MuseScore's: SF2 with each sample an Ogg Vorbis stream) decompressed to plain SF2, which is
what tinysoundfont reads (it loads an SF3 without complaint and plays its compressed bytes as noise).

In an SF3, a compressed sample's `start` and `end` in the sample headers are byte offsets of its Ogg stream in the
`smpl` chunk (end exclusive) and its loop points count decoded frames from the sample's own start. The SF2 written
here holds the decoded 16-bit samples one after another, each followed by the 46 zero frames SF2 asks for, with
the headers rewritten to absolute frame positions; every other chunk is copied as it was.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import soundfile

from infra.files import atomic_write

VORBIS_FLAG = 0x10
SAMPLE_HEADER = struct.Struct("<20sIIIIIBbHH")  # name, start, end, loop start, loop end, rate, pitch, cents, link, type
ZERO_FRAMES_AFTER_SAMPLE = 46


def chunks(data: bytes, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """The (id, body) RIFF chunks in data[start:end]; tolerates the missing pad byte after an odd-sized chunk."""
    found = []
    while start + 8 <= end:
        chunk_id, size = data[start:start + 4], struct.unpack("<I", data[start + 4:start + 8])[0]
        found.append((chunk_id, data[start + 8:start + 8 + size]))
        start += 8 + size
        if size % 2 and data[start:start + 1] == b"\0":
            start += 1
    return found


def riff_chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)


def riff_list(kind: bytes, parts: list[tuple[bytes, bytes]]) -> bytes:
    return riff_chunk(b"LIST", kind + b"".join(riff_chunk(chunk_id, body) for chunk_id, body in parts))


def decode_samples(smpl: bytes, shdr: bytes) -> tuple[bytes, bytes]:
    """(SF2 smpl chunk body, SF2 shdr chunk body) from an SF3's compressed ones."""
    pcm, headers, position = [], [], 0
    for offset in range(0, len(shdr), SAMPLE_HEADER.size):
        name, start, end, loop_start, loop_end, rate, pitch, cents, link, kind = SAMPLE_HEADER.unpack_from(shdr, offset)
        if kind & VORBIS_FLAG:
            frames, _ = soundfile.read(io.BytesIO(smpl[start:end]), dtype="int16", always_2d=True)
            frames = frames[:, 0]
            start, end = position, position + len(frames)
            loop_start, loop_end = position + loop_start, position + loop_end
            kind &= ~VORBIS_FLAG
            pcm += [frames.tobytes(), np.zeros(ZERO_FRAMES_AFTER_SAMPLE, np.int16).tobytes()]
            position = end + ZERO_FRAMES_AFTER_SAMPLE
        elif offset + SAMPLE_HEADER.size < len(shdr):
            label = name.split(b"\0")[0].decode(errors="replace")
            raise ValueError(f"sample {label!r} is not Ogg Vorbis: an SF3 mixing PCM and Vorbis samples "
                             "is not supported")
        headers.append(SAMPLE_HEADER.pack(name, start, end, loop_start, loop_end, rate, pitch, cents, link, kind))
    return b"".join(pcm), b"".join(headers)


def sf3_to_sf2(data: bytes) -> bytes:
    """The bytes of an SF2 holding an SF3's presets with its samples decoded."""
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise ValueError("not a SoundFont: the file does not start with a RIFF 'sfbk' header")
    lists = {body[:4]: chunks(body, 4, len(body)) for chunk_id, body in chunks(data, 12, len(data))
             if chunk_id == b"LIST"}
    if set(lists) < {b"INFO", b"sdta", b"pdta"}:
        raise ValueError(f"a SoundFont needs LIST chunks INFO, sdta and pdta, found {sorted(lists)}")
    pdta = dict(lists[b"pdta"])
    smpl, shdr = decode_samples(dict(lists[b"sdta"])[b"smpl"], pdta[b"shdr"])
    info = [(chunk_id, struct.pack("<HH", 2, 4) if chunk_id == b"ifil" else body) for chunk_id, body in lists[b"INFO"]]
    pdta_parts = [(chunk_id, shdr if chunk_id == b"shdr" else body) for chunk_id, body in lists[b"pdta"]]
    body = b"sfbk" + riff_list(b"INFO", info) + riff_list(b"sdta", [(b"smpl", smpl)]) + riff_list(b"pdta", pdta_parts)
    return riff_chunk(b"RIFF", body)


def decompressed(path: str | Path, cache: str | Path) -> Path:
    """`path` itself for an SF2; for an SF3, its SF2 in the folder `cache` (written once, atomically)."""
    path = Path(path)
    if path.suffix.lower() != ".sf3":
        return path
    target = Path(cache) / f"{path.stem}-{path.stat().st_size}.sf2"
    if not target.is_file():
        converted = sf3_to_sf2(path.read_bytes())
        atomic_write(target, lambda temporary: temporary.write_bytes(converted))
    return target
