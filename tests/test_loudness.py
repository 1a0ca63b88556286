"""The BS.1770 meter against the recommendation's numbers: its 48 kHz K-weighting table, -3.01 LUFS for a full-scale
997 Hz sine, and two of EBU Tech 3341's gating cases (-23 LUFS within 0.1 LU)."""
from __future__ import annotations

import math

import pytest
import torch

from musicgen.loudness import integrated_loudness, k_weighting

# ITU-R BS.1770-4, tables 1 and 2: the shelf, then the high pass, at 48 kHz
ITU_48K = [((1.53512485958697, -2.69169618940638, 1.19839281085285), (1.0, -1.69065929318241, 0.73248077421585)),
           ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621))]


def tone(dbfs: float, seconds: float, rate: int, frequency: float = 997.0) -> torch.Tensor:
    t = torch.arange(round(seconds * rate), dtype=torch.float64) / rate
    return 10 ** (dbfs / 20) * torch.sin(2 * math.pi * frequency * t)


def test_k_weighting_at_48_khz_is_the_recommendations_table():
    for (b, a), (itu_b, itu_a) in zip(k_weighting(48000), ITU_48K):
        assert b == pytest.approx(itu_b, abs=1e-12) and a == pytest.approx(itu_a, abs=1e-12)


@pytest.mark.parametrize("rate, tolerance", [(48000, 0.001), (44100, 0.02), (32000, 0.02)])  # the table's rate, others
def test_a_full_scale_sine_in_one_channel_reads_minus_3_01(rate, tolerance):
    assert integrated_loudness(tone(0, 1.0, rate)[None], rate) == pytest.approx(-3.01, abs=tolerance)
    stereo = tone(-23, 1.0, rate)[None].repeat(2, 1)           # EBU 3341 case 1: both channels at -23 dBFS
    assert integrated_loudness(stereo, rate) == pytest.approx(-23.0, abs=tolerance)


@pytest.mark.parametrize("parts", [
    [(-36, 10), (-23, 60), (-36, 10)],                           # case 3: the relative gate drops the -36 dB parts
    [(-26, 20), (-20, 20.1), (-26, 20)],                         # case 5: all three count
    [(-72, 10), (-23, 60), (-72, 10)],                           # the absolute gate drops the -72 dB parts
])
def test_ebu_tech_3341_gating_cases_read_minus_23(parts):
    rate = 16000
    stereo = torch.cat([tone(dbfs, seconds, rate, 1000.0) for dbfs, seconds in parts])[None].repeat(2, 1)
    assert integrated_loudness(stereo, rate) == pytest.approx(-23.0, abs=0.1)


def test_silence_and_bad_input():
    assert integrated_loudness(torch.zeros(1, 8000), 8000) == -math.inf
    assert integrated_loudness(torch.full((1, 8000), 1e-5), 8000) == -math.inf     # below the -70 LUFS gate
    with pytest.raises(ValueError, match="0.4 s blocks; got 0.399 s"):
        integrated_loudness(torch.ones(1, 3192), 8000)
    with pytest.raises(ValueError, match=r"expected wav \[C, N\] with 1 to 5 channels"):
        integrated_loudness(torch.ones(6, 8000), 8000)
