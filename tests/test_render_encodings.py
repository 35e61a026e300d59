"""GAF / recurrence plot / MTF encodings through pyts: shapes, value ranges, known values, flat and short leads.

Marked slow: without numba's on-disk cache (a fresh CI machine) importing pyts compiles its kernels (~40 s).
"""

from __future__ import annotations

import numpy as np
import pytest

from meit.errors import ConfigError, DataError
from meit.render import ENCODINGS, VALUE_RANGE, signal_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def record() -> np.ndarray:
    t = np.arange(5000) / 500
    rng = np.random.default_rng(0)
    return np.stack([np.sin(2 * np.pi * (1 + k / 7) * t) + rng.normal(0, 0.05, t.size) for k in range(12)])


@pytest.mark.parametrize("mode", ENCODINGS)
@pytest.mark.parametrize("size", [32, 224])
def test_shape_type_and_range(mode, size, record):
    out = signal_image(record, 500, mode=mode, size=size)
    low, high = VALUE_RANGE[mode]
    assert out.shape == (12, size, size) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= low and out.max() <= high
    assert out.std(axis=(1, 2)).min() > 0.01  # every lead carries a pattern
    if mode != "mtf":  # cos(φi + φj) and |xi − xj| are symmetric; transition probabilities i → j are not
        assert np.allclose(out, out.transpose(0, 2, 1), atol=1e-5)
    assert signal_image(record, 500, mode=mode, size=size).tobytes() == out.tobytes()


def test_gaf_of_a_ramp_has_its_known_corners():
    ramp = np.tile(np.linspace(0.0, 2.0, 640), (12, 1))
    gaf = signal_image(ramp, 64, mode="gaf", size=64)[0]
    # scaled to [-1, 1], φ = arccos: the first point has φ = π, the last φ = 0, so cos(φi + φj) is 1, 1, -1
    assert gaf[0, 0] == pytest.approx(1.0, abs=0.02) and gaf[-1, -1] == pytest.approx(1.0, abs=0.02)
    assert gaf[0, -1] == pytest.approx(-1.0, abs=0.02)


def test_recurrence_plot_is_the_scaled_distance():
    ramp = np.tile(np.linspace(-1.0, 3.0, 640), (12, 1))
    rp = signal_image(ramp, 64, mode="rp", size=64)[0]
    assert np.allclose(np.diag(rp), 0.0) and rp[0, -1] == pytest.approx(1.0)
    assert rp[0, 32] == pytest.approx(32 / 63, abs=0.01)


def test_mtf_of_an_alternating_lead_is_its_transition_probability():
    # 0, 1, 0, 1, …: P(0 → 1) = P(1 → 0) = 1 and P(0 → 0) = P(1 → 1) = 0; each pixel averages 4 × 4 sample
    # pairs, half of them (0, 1) or (1, 0), so every pixel is 0.5
    alternating = np.tile(np.arange(64) % 2, (12, 1)).astype(float)
    mtf = signal_image(alternating, 100, mode="mtf", size=16)
    assert np.allclose(mtf, 0.5)


@pytest.mark.parametrize("mode", ENCODINGS)
def test_a_flat_lead_gives_a_zero_channel_and_leaves_the_others(mode, record):
    signal = record.copy()
    signal[3] = 0.7
    out = signal_image(signal, 500, mode=mode, size=48)
    assert not out[3].any()
    assert np.array_equal(out[4], signal_image(record, 500, mode=mode, size=48)[4])
    assert not signal_image(np.zeros((12, 500)), 500, mode=mode, size=48).any()


@pytest.mark.parametrize("mode", ENCODINGS)
@pytest.mark.parametrize(("n", "fs"), [(1, 100), (20, 257), (63, 1000)])
def test_records_shorter_than_the_image_are_stretched(mode, n, fs):
    signal = np.random.default_rng(n).normal(0, 1, size=(12, n))
    out = signal_image(signal, fs, mode=mode, size=64)
    assert out.shape == (12, 64, 64) and np.isfinite(out).all()


def test_seconds_crops_or_pads_the_record(record):
    cropped = signal_image(record, 500, mode="rp", size=32, seconds=2.0)
    assert np.array_equal(cropped, signal_image(record[:, :1000], 500, mode="rp", size=32))
    padded = signal_image(record[:, :1000], 500, mode="rp", size=32, seconds=4.0)
    assert padded.shape == (12, 32, 32) and not np.array_equal(padded, cropped)


def test_bad_inputs_are_typed_errors(record):
    bad = record.copy()
    bad[0, 10] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        signal_image(bad, 500, mode="gaf")
    with pytest.raises(ConfigError, match="mode"):
        signal_image(record, 500, mode="cwt")
    with pytest.raises(ConfigError, match="size"):
        signal_image(record, 500, mode="gaf", size=4)
    with pytest.raises(ConfigError, match="seconds"):
        signal_image(record, 500, mode="gaf", seconds=0)
    with pytest.raises(DataError, match="expected shape"):
        signal_image(record[:6], 500, mode="rp")


def test_the_render_benchmark_times_every_case():
    from meit.bench.render import describe, run_bench

    rows = run_bench(n=2, dpis=(30,), layouts=("3x4", "12x1"), encodings_size=16)
    assert [(r.what, r.layout) for r in rows] == [
        ("paper", "3x4"), ("paper + augment all=0.5", "3x4"), ("paper + PNG encode", "3x4"), ("paper", "12x1"),
        ("gaf", "12 channels"), ("rp", "12 channels"), ("mtf", "12 channels")]
    assert all(r.cpu_per_s > 0 and r.wall_per_s > 0 for r in rows)
    assert rows[0].size == "319×207"  # 270 mm × 175 mm at 30 DPI
    assert "images/s per core" in describe(rows, 2, 500)
