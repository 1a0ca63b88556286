"""Hugging Face MusicGen melody layout (facebook/musicgen-melody, musicgen-melody-large:
MusicgenMelodyForConditionalGeneration) -> this project's modules, translated at load time.

The directory is musicgen/hf.py's layout with a config of model_type 'musicgen_melody' (a MusicgenMelodyConfig, which
adds num_chroma and chroma_length) and a decoder without cross-attention. transformers runs that decoder on

    [audio_enc_to_dec_proj(chroma) tiled or cut to chroma_length rows, enc_to_dec_proj(text) with padding rows zeroed,
     audio tokens]

under plain causal self-attention, the positions running over the whole concatenation; the null rows of guidance get
zero text and the chroma of "no melody" (bin 0 in every frame). That is our LM with cross_attention false,
chroma_bins = num_chroma and chroma_frames = chroma_length (musicgen/lm.py's prefix):

    audio_enc_to_dec_proj -> chroma_projection (the identity when absent: num_chroma == hidden_size)
    everything else       -> as musicgen/hf.py maps it (the layers have no encoder_attn)

A preprocessor_config.json beside it (MusicgenMelodyFeatureExtractor's settings) gives the chroma's STFT
(n_fft, hop_length, chunk_length seconds); without one, transformers' defaults, which are ChromaConfig's.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from transformers import MusicgenMelodyConfig

from .config import ChromaConfig
from .hf import HF_CONFIG, lm_config_from_hf, lm_state_from_hf, projection_from_hf
from .lm import LM

MODEL_TYPE = "musicgen_melody"
FEATURE_EXTRACTOR_CONFIG = "preprocessor_config.json"
FEATURE_EXTRACTOR = "MusicgenMelodyFeatureExtractor"


def is_melody(path: Path) -> bool:
    """Whether the HF directory at path holds a MusicGen melody model (config.json's model_type)."""
    return json.loads((path / HF_CONFIG).read_text()).get("model_type") == MODEL_TYPE


def read_melody_config(path: Path) -> MusicgenMelodyConfig:
    """The full MusicgenMelodyConfig (defaults filled in) of an HF MusicGen melody directory."""
    data = json.loads((path / HF_CONFIG).read_text())
    if data.get("model_type") != MODEL_TYPE:
        raise ValueError(f"{path / HF_CONFIG} is not a MusicGen melody config (model_type={data.get('model_type')!r}, "
                         f"expected {MODEL_TYPE!r})")
    return MusicgenMelodyConfig.from_dict(data)


def lm_from_hf_melody(config: MusicgenMelodyConfig, state: dict[str, torch.Tensor]) -> LM:
    """The LM holding the melody decoder's tensors: no cross-attention, the chroma and the text as its prefix."""
    if any(".encoder_attn." in name for name in state):
        raise ValueError("the checkpoint says model_type 'musicgen_melody' but its decoder has cross-attention "
                         "(encoder_attn) weights, which a melody decoder does not: is it a plain MusicGen one?")
    lm_config = dataclasses.replace(lm_config_from_hf(config), cross_attention=False, chroma_bins=config.num_chroma,
                                    chroma_frames=config.chroma_length)
    weights = lm_state_from_hf(state, lm_config)
    weights |= projection_from_hf(state, "audio_enc_to_dec_proj", "chroma_projection", lm_config.dim)
    return LM.from_weights(lm_config, weights).eval()


def chroma_config_from_hf(path: Path, sample_rate: int) -> ChromaConfig:
    """The chroma settings of the MusicgenMelodyFeatureExtractor config at path (ChromaConfig's defaults without one,
    or beside a plain MusicGen's EncodecFeatureExtractor config); its sampling rate must be the codec's (sample_rate),
    at which the chroma is computed."""
    file = path / FEATURE_EXTRACTOR_CONFIG
    data = json.loads(file.read_text()) if file.is_file() else {}
    if data.get("feature_extractor_type") != FEATURE_EXTRACTOR:
        return ChromaConfig()
    if data.get("sampling_rate", sample_rate) != sample_rate:
        raise ValueError(f"{file} computes chroma at {data['sampling_rate']} Hz; expected the codec's {sample_rate} Hz")
    defaults = ChromaConfig()
    return ChromaConfig(n_fft=data.get("n_fft", defaults.n_fft), hop_length=data.get("hop_length", defaults.hop_length),
                        max_seconds=data.get("chunk_length", defaults.max_seconds))
