"""Codebook interleaving patterns: K parallel token streams <-> one sequence of steps."""
from .pattern import Pattern
from .providers import (
    PATTERN_NAMES,
    DelayedPatternProvider,
    FlattenPatternProvider,
    ParallelPatternProvider,
    PatternProvider,
    ValleyPatternProvider,
    get_provider,
)

__all__ = [
    "PATTERN_NAMES",
    "DelayedPatternProvider",
    "FlattenPatternProvider",
    "ParallelPatternProvider",
    "Pattern",
    "PatternProvider",
    "ValleyPatternProvider",
    "get_provider",
]

