"""Survival labels: a clinical CSV with one row per slide (id, time, event)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd


@dataclasses.dataclass
class SurvivalTable:
  ids: list[str]
  time: np.ndarray   # (slides,) float, > 0
  event: np.ndarray  # (slides,) bool: True if the event was observed, False if censored

  def select(self, ids: list[str]) -> "SurvivalTable":
    """The rows of these slides, in this order; an unknown id is an error."""
    index = {s: i for i, s in enumerate(self.ids)}
    missing = [s for s in ids if s not in index]
    if missing:
      raise ValueError(f"survival: no clinical row for slides {missing[:5]} "
                       f"({len(missing)} missing)")
    rows = [index[s] for s in ids]
    return SurvivalTable(list(ids), self.time[rows], self.event[rows])


def load_csv(path: str, *, id_col: str = "slide_id", time_col: str = "time",
             event_col: str = "event") -> SurvivalTable:
  df = pd.read_csv(path)
  for col in (id_col, time_col, event_col):
    if col not in df.columns:
      raise ValueError(f"{path}: expected a column {col!r}; it has {list(df.columns)}")
  ids = df[id_col].astype(str)
  if ids.duplicated().any():
    raise ValueError(f"{path}: duplicated ids in {id_col!r}: {sorted(set(ids[ids.duplicated()]))[:5]}")
  time = pd.to_numeric(df[time_col], errors="coerce").to_numpy(np.float64)
  if not np.isfinite(time).all() or (time <= 0).any():
    bad = ids[~(np.isfinite(time) & (time > 0))].tolist()
    raise ValueError(f"{path}: {time_col!r} must be a positive number; bad rows: {bad[:5]}")
  event = df[event_col]
  if not event.isin([0, 1, True, False]).all():
    raise ValueError(f"{path}: {event_col!r} must be 0/1 (1: event observed, 0: censored)")
  return SurvivalTable(ids.tolist(), time, event.astype(bool).to_numpy())
