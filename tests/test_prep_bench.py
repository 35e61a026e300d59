"""The preparation benchmark runs end to end on a handful of records."""

from __future__ import annotations

from meit.bench.prep import main, make_raw, run_once


def test_bench_small(tmp_path, capsys):
    root = make_raw(tmp_path / "raw", 12, workers=1)
    assert (root / ".complete").exists()
    row = run_once(root, tmp_path / "out", workers=2)
    assert row["records"] == 12 and row["rejected"] == 0
    assert row["records_per_s"] > 0 and row["peak_rss_tree_mb"] > 0
    assert main(["--records", "12", "--workers", "1", "--dir", str(tmp_path)]) == 0
    assert "| 12 | 1 |" in capsys.readouterr().out
