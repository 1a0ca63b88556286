"""Stage one: an EnCodec-style codec, audio [B, C, N] <-> codes [B, K, T]."""
from .model import Codec, CodecConfig, CodecOutput

__all__ = ["Codec", "CodecConfig", "CodecOutput"]
