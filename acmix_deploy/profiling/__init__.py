"""Honest latency measurement: interleaved side-by-side timing, medians and ratios."""

from ..timing import LatencyStats, summarize, time_interleaved

__all__ = ["LatencyStats", "summarize", "time_interleaved"]
