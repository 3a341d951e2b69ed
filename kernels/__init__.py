"""Sequence-mixing kernels for mvhybrid_jax: the selective scan (reference, XLA, Pallas)."""

from kernels.scan import selective_scan

__all__ = ["selective_scan"]
