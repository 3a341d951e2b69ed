"""Analyses of trained and untrained backbones (spectral bias: analysis.spectral)."""
