"""Clinical survival CSVs: parsing, selection, and the errors that name the problem."""

import numpy as np
import pandas as pd
import pytest

from mvhybrid_jax.data import clinical


def write(tmp_path, **cols):
  path = tmp_path / "clinical.csv"
  pd.DataFrame(cols).to_csv(path, index=False)
  return str(path)


def test_load_and_select(tmp_path):
  path = write(tmp_path, slide_id=["a", "b", "c"], time=[3.5, 1.0, 7.25], event=[1, 0, 1])
  table = clinical.load_csv(path)
  assert table.ids == ["a", "b", "c"]
  np.testing.assert_array_equal(table.event, [True, False, True])
  sub = table.select(["c", "a"])
  np.testing.assert_array_equal(sub.time, [7.25, 3.5])
  with pytest.raises(ValueError, match=r"no clinical row for slides \['z'\]"):
    table.select(["a", "z"])


@pytest.mark.parametrize("cols, message", [
    (dict(slide=["a"], time=[1.0], event=[1]), "expected a column 'slide_id'"),
    (dict(slide_id=["a", "a"], time=[1.0, 2.0], event=[1, 0]), "duplicated ids"),
    (dict(slide_id=["a", "b"], time=[1.0, -2.0], event=[1, 0]), r"positive number; bad rows: \['b'\]"),
    (dict(slide_id=["a", "b"], time=[1.0, None], event=[1, 0]), "positive number"),
    (dict(slide_id=["a"], time=[1.0], event=[2]), "must be 0/1"),
])
def test_bad_tables(tmp_path, cols, message):
  with pytest.raises(ValueError, match=message):
    clinical.load_csv(write(tmp_path, **cols))
