"""CSV reading: good files parse; every user mistake is one line naming file and line."""
import numpy as np
import pytest

from cogsim.errors import CogsimError
from cogsim.anomaly.csvio import read_series, write_scores


def write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_timestamp_value_with_extra_columns(tmp_path):
    p = write(tmp_path, "value,timestamp,label\n1.5,2014-04-01 00:00:00,0\n-2e3,2014-04-01T00:05:00,1\n\n")
    ts, v = read_series(p)
    assert v.tolist() == [1.5, -2000.0]
    assert ts[1] - ts[0] == np.timedelta64(5, "m")


@pytest.mark.parametrize("text,pattern", [
    ("", r"s\.csv: empty file"),
    ("timestamp,value\n", r"s\.csv: no data rows"),
    ("time,value\n2014-04-01 00:00:00,1\n", r"s\.csv:1: missing column 'timestamp'"),
    ("timestamp\n2014-04-01 00:00:00\n", r"s\.csv:1: missing column 'value'"),
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n", r"s\.csv:3: value: cannot parse 'abc'"),
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,nan\n", r"s\.csv:3: value: 'nan' is not a finite"),
    ("timestamp,value\n2014-04-01 00:00:00,1\n\n2014-13-45 00:05:00,2\n", r"s\.csv:4: timestamp: cannot parse"),
    ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01\n", r"s\.csv:3: expected 2 fields, got 1"),
    ("timestamp,value\n2014-04-01 00:05:00,1\n2014-04-01 00:00:00,2\n", r"s\.csv:3: timestamp: .* earlier"),
])
def test_errors_are_one_line_with_file_and_line(tmp_path, text, pattern):
    p = write(tmp_path, text)
    with pytest.raises(CogsimError, match=pattern) as err:
        read_series(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(CogsimError, match="file not found"):
        read_series(tmp_path / "nope.csv")


def test_write_scores_round_trip(tmp_path):
    ts = np.array(["2014-04-01T00:00", "2014-04-01T00:05"], dtype="datetime64[ns]")
    out = tmp_path / "o" / "s.csv"
    write_scores(out, ts, np.array([1.5, 2.0]), np.array([0.25, 1.0]))
    lines = out.read_text().splitlines()
    assert lines == ["timestamp,value,anomaly_score", "2014-04-01 00:00:00,1.5,0.25", "2014-04-01 00:05:00,2.0,1"]
    ts2, v2 = read_series(out)
    assert np.array_equal(ts2, ts) and v2.tolist() == [1.5, 2.0]


def test_rows_back_in_time_are_reported_and_kept_in_file_order_when_asked(tmp_path):
    minutes = [0, 5, 3, 10, 2, 20, 1, 30, 0]  # four rows earlier than the row before
    text = "timestamp,value\n" + "".join(f"2014-04-01 00:{m:02d}:00,{i}\n" for i, m in enumerate(minutes))
    p = write(tmp_path, text)
    with pytest.raises(CogsimError, match=r"s\.csv:4: timestamp: .* earlier"):
        read_series(p)  # without warn it stays an error
    said = []
    ts, v = read_series(p, warn=said.append)
    assert v.tolist() == list(range(9))
    assert ((ts - ts[0]) // np.timedelta64(1, "m")).tolist() == minutes
    assert said[0] == f"{p}:4: timestamp: '2014-04-01 00:03:00' is earlier than the row before " \
                      f"('2014-04-01 00:05:00'); rows are read in file order"
    assert [s.split(":")[1] for s in said[:3]] == ["4", "6", "8"]
    assert said[3] == f"{p}: 1 more rows earlier than the row before" and len(said) == 4
