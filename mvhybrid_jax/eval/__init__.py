"""Evaluation: frozen-backbone features, probes, protocols and reports (eval.py)."""
