"""``cogsim bench htm``'s pipeline series: NAB's length mix (no timing here; the bench times)."""
import argparse

import numpy as np
import pytest

from cogsim.bench.htm import NAB_LENGTHS, _pipeline_series


def args(**kw):
    return argparse.Namespace(**{"nab": None, "pipeline_scale": 1.0, "seed": 0, **kw})


def test_nab_length_mix():
    assert len(NAB_LENGTHS) == 58 and sum(NAB_LENGTHS) == 365_558
    assert max(NAB_LENGTHS) == 22_695 and min(NAB_LENGTHS) == 1_127
    series, what = _pipeline_series(args(pipeline_scale=0.01))
    assert [len(v) for _, v in series] == [int(n * 0.01) for n in NAB_LENGTHS]
    assert "NAB's 58 file lengths × 0.01" in what
    for ts, v in series:
        assert ts.dtype == np.dtype("datetime64[s]") and np.all(np.diff(ts) > np.timedelta64(0)) and np.isfinite(v).all()
    with pytest.raises(ValueError, match="--pipeline-scale: must be in"):
        _pipeline_series(args(pipeline_scale=0))


def test_nab_checkout_series(tmp_path):
    for name, rows in (("a/x.csv", 30), ("b/y.csv", 12)):
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True)
        stamps = np.datetime64("2020-01-01T00:00") + np.arange(rows) * np.timedelta64(5, "m")
        path.write_text("timestamp,value\n" + "".join(f"{str(t).replace('T', ' ')},{i}\n" for i, t in enumerate(stamps)))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text("{}")
    series, what = _pipeline_series(args(nab=str(tmp_path)))
    assert [len(v) for _, v in series] == [30, 12] and "2 data files" in what
