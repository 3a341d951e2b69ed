"""Sequence-mixing kernels for mvhybrid_jax: the selective scan (reference, XLA, Pallas) and the
Mamba-2 SSD scan (reference, chunked)."""

from kernels.scan import selective_scan
from kernels.ssd import ssd

__all__ = ["selective_scan", "ssd"]
