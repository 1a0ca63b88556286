"""Stage one: an EnCodec-style codec, audio [B, C, N] <-> codes [B, K, T]."""
from .config import CodecConfig
from .model import Codec, CodecOutput

__all__ = ["Codec", "CodecConfig", "CodecOutput"]
