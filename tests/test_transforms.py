"""Load-time signal transforms: shapes, no NaN/inf ever, flat leads, wrong rates (property-based)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from meit.data.transforms import BASELINES, EcgTransform, build_transform
from meit.ecg_signal import (
    NORMALISATIONS,
    bandpass,
    crop_or_pad,
    median_baseline,
    minmax,
    minmax_record,
    normalise,
    notch,
    remove_baseline,
    resample,
    zscore,
    zscore_record,
)
from meit.errors import ConfigError, DataError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RATES = st.sampled_from([50, 100, 128, 250, 257, 360, 500, 1000])

nasty_floats = st.one_of(
    st.floats(-1e3, 1e3, width=32),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 3.0e38, -3.0e38]),
)


def signals(leads: int = 12, max_t: int = 1500, elements=None):
    return st.integers(1, max_t).flatmap(
        lambda t: hnp.arrays(np.float32, (leads, t), elements=nasty_floats if elements is None else elements)
    )


@FAST
@given(x=signals(max_t=800), fs_in=RATES, fs_out=st.sampled_from([100, 250, 500]),
       seconds=st.sampled_from([1.0, 2.5, 10.0]), norm=st.sampled_from(["none", "zscore", "minmax"]),
       crop=st.sampled_from(["center", "start", "random"]), baseline=st.booleans())
def test_pipeline_shape_dtype_and_finite(x, fs_in, fs_out, seconds, norm, crop, baseline):
    tf = build_transform(fs_in, fs_out, seconds, norm, bandpass=None, baseline=baseline, crop=crop, seed=0)
    y = tf(x)
    assert y.shape == (12, round(fs_out * seconds))
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    if norm == "minmax":
        assert y.min() >= 0.0 and y.max() <= 1.0


@FAST
@given(x=signals(max_t=600), fs_in=RATES, low=st.sampled_from([None, 0.5, 1.0]),
       high=st.sampled_from([None, 40.0, 100.0, 1000.0]))
def test_pipeline_with_bandpass_is_finite(x, fs_in, low, high):
    if low is None and high is None:
        high = 40.0
    tf = build_transform(fs_in, 100, 2.0, "zscore", bandpass=(low, high))
    y = tf(x)
    assert y.shape == (12, 200) and np.isfinite(y).all()


@FAST
@given(t=st.integers(1, 3000), fs_in=RATES, fs_out=RATES)
def test_resample_length_and_tone(t, fs_in, fs_out):
    time = np.arange(t) / fs_in
    x = np.tile(np.sin(2 * np.pi * 1.0 * time), (12, 1))
    y = resample(x, fs_in, fs_out)
    assert y.shape == (12, math.ceil(t * fs_out / fs_in))
    assert np.isfinite(y).all()


def test_resample_preserves_a_slow_sine():
    t = np.arange(5000) / 500
    x = np.tile(np.sin(2 * np.pi * 2.0 * t), (12, 1))
    y = resample(x, 500, 100)
    ref = np.sin(2 * np.pi * 2.0 * np.arange(1000) / 100)
    assert np.abs(y[:, 50:-50] - ref[50:-50]).max() < 1e-2


@FAST
@given(x=signals(max_t=300, elements=st.floats(-10, 10, width=32)), length=st.integers(0, 400),
       mode=st.sampled_from(["center", "start", "random"]), seed=st.integers(0, 10))
def test_crop_or_pad(x, length, mode, seed):
    y = crop_or_pad(x, length, mode, np.random.default_rng(seed))
    assert y.shape == (12, length)
    n = x.shape[1]
    if mode == "start":
        k = min(n, length)
        np.testing.assert_array_equal(y[:, :k], x[:, :k])
        assert not y[:, k:].any()
    # the same seed gives the same crop
    again = crop_or_pad(x, length, mode, np.random.default_rng(seed))
    np.testing.assert_array_equal(y, again)


def test_crop_center_is_middle():
    x = np.arange(10, dtype=float)[None].repeat(12, 0)
    assert crop_or_pad(x, 4, "center")[0].tolist() == [3, 4, 5, 6]
    assert crop_or_pad(x, 12, "center")[0].tolist() == [0, *range(10), 0]


@FAST
@given(x=signals(max_t=500, elements=st.floats(-1e3, 1e3, width=32)))
def test_zscore_properties(x):
    y = zscore(x)
    assert np.isfinite(y).all()
    std = x.astype(np.float64).std(axis=1)
    for lead in range(12):
        if std[lead] > 1e-3:
            assert abs(y[lead].mean()) < 1e-6
            assert abs(y[lead].std() - 1.0) < 1e-6
        elif std[lead] == 0:
            assert not y[lead].any()


@FAST
@given(x=signals(max_t=500, elements=st.floats(-1e6, 1e6, width=32)))
def test_minmax_properties(x):
    y = minmax(x)
    assert np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    span = np.ptp(x.astype(np.float64), axis=1)
    for lead in range(12):
        if span[lead] > 1e-9:
            assert y[lead].min() == 0.0 and y[lead].max() == 1.0
        elif span[lead] > 0:
            pass  # below the flatness threshold either answer is fine
        else:
            assert not y[lead].any()


def test_flat_and_all_nan_leads_give_zeros():
    x = np.zeros((12, 1000), dtype=np.float32)
    x[3] = np.nan
    x[5] = 7.0
    for norm in ("zscore", "minmax"):
        y = build_transform(100, 100, 10, norm)(x)
        assert np.isfinite(y).all() and not y.any()


def test_remove_baseline_kills_drift_keeps_qrs_band():
    fs = 250
    t = np.arange(10 * fs) / fs
    drift = 2.0 * np.sin(2 * np.pi * 0.1 * t)
    tone = 0.5 * np.sin(2 * np.pi * 10 * t)
    y = remove_baseline(np.tile(drift + tone, (12, 1)), fs)
    mid = slice(fs * 2, -fs * 2)
    assert np.abs(y[0, mid] - tone[mid]).max() < 0.05


def test_bandpass_removes_high_frequency():
    fs = 500
    t = np.arange(5 * fs) / fs
    x = np.tile(np.sin(2 * np.pi * 5 * t) + np.sin(2 * np.pi * 150 * t), (12, 1))
    y = bandpass(x, fs, 0.5, 40.0)
    mid = slice(fs, -fs)
    assert np.abs(y[0, mid] - np.sin(2 * np.pi * 5 * t)[mid]).max() < 0.05


def test_random_crop_is_seeded_per_transform():
    x = np.random.default_rng(0).normal(size=(12, 2000))
    a = build_transform(100, 100, 5, crop="random", seed=3)
    b = build_transform(100, 100, 5, crop="random", seed=3)
    np.testing.assert_array_equal(a(x), b(x))


def test_per_record_fs_override():
    x = np.random.default_rng(0).normal(size=(12, 5000))
    tf = build_transform(100, 100, 10)
    assert tf(x, fs=500).shape == (12, 1000)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fs_in": 0, "fs_out": 100, "seconds": 10}, ConfigError),
        ({"fs_in": 100, "fs_out": 99.5, "seconds": 10}, ConfigError),
        ({"fs_in": 100, "fs_out": 100, "seconds": 0}, ConfigError),
        ({"fs_in": 100, "fs_out": 100, "seconds": 10, "normalisation": "l2"}, ConfigError),
        ({"fs_in": 100, "fs_out": 100, "seconds": 10, "crop": "end"}, ConfigError),
        ({"fs_in": 100, "fs_out": 100, "seconds": 10, "bandpass": (40.0, 0.5)}, ConfigError),
        ({"fs_in": 100, "fs_out": 100, "seconds": 10, "bandpass": (60.0, None)}, ConfigError),
    ],
)
def test_bad_declarations_raise_config_error(kwargs, error):
    with pytest.raises(error):
        EcgTransform(**kwargs)


def test_wrong_lead_count_raises_data_error():
    with pytest.raises(DataError, match="12 leads"):
        build_transform(100, 100, 1)(np.zeros((11, 100)))
    with pytest.raises(DataError):
        build_transform(100, 100, 1)(np.zeros(100))


# --------------------------------------------------------------------------------------------- record-wide
# normalisation and declared filtering (notch, band-pass order, median baseline)


def signals_with_flat_leads(max_t: int = 400):
    """Finite random signals where a random subset of leads is constant (and some records wholly flat)."""
    return st.tuples(
        signals(max_t=max_t, elements=st.floats(-1e3, 1e3, width=32)),
        st.lists(st.booleans(), min_size=12, max_size=12),
        st.floats(-5, 5, width=32),
    ).map(lambda args: np.where(np.array(args[1])[:, None], np.float32(args[2]), args[0]))


@FAST
@given(x=signals(max_t=800), fs_in=RATES, record_fs=st.one_of(st.none(), RATES),
       fs_out=st.sampled_from([100, 250, 500]), seconds=st.sampled_from([0.5, 2.5, 10.0]),
       norm=st.sampled_from(NORMALISATIONS), notch_hz=st.sampled_from([None, 50.0, 60.0]),
       band=st.sampled_from([None, (0.67, 40.0), (0.5, None), (None, 30.0), (1.0, 1000.0)]),
       order=st.integers(1, 8), baseline=st.sampled_from(BASELINES), padding=st.sampled_from(["scipy", "mirror"]),
       crop=st.sampled_from(["center", "start", "random"]))
def test_pipeline_with_declared_filters_shape_dtype_and_finite(x, fs_in, record_fs, fs_out, seconds, norm, notch_hz,
                                                                band, order, baseline, padding, crop):
    tf = build_transform(fs_in, fs_out, seconds, norm, band, bandpass_order=order, notch_hz=notch_hz,
                         baseline=baseline, padding=padding, crop=crop, seed=0)
    y = tf(x, fs=record_fs)  # the record's own rate may differ from the declared one
    assert y.shape == (12, round(fs_out * seconds))
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    if norm in ("minmax", "minmax_record"):
        assert y.min() >= 0.0 and y.max() <= 1.0


@FAST
@given(x=signals(max_t=500, elements=st.floats(-1e3, 1e3, width=32)))
def test_zscore_record_properties(x):
    y = zscore_record(x)
    assert y.shape == x.shape and y.dtype == np.float64 and np.isfinite(y).all()
    std = x.astype(np.float64).std()
    if std > 1e-3:
        assert abs(y.mean()) < 1e-6
        assert abs(y.std() - 1.0) < 1e-6
        # one mean and one scale for every lead: the leads keep their relative offsets and sizes
        np.testing.assert_allclose(y * std + x.astype(np.float64).mean(), x, rtol=1e-6, atol=1e-6 * max(1.0, std))
    elif std == 0:
        assert not y.any()


@FAST
@given(x=signals(max_t=500, elements=st.floats(-1e6, 1e6, width=32)))
def test_minmax_record_properties(x):
    y = minmax_record(x)
    assert y.shape == x.shape and np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    span = np.ptp(x.astype(np.float64))
    if span > 1e-9:
        assert y.min() == 0.0 and y.max() == 1.0
        np.testing.assert_allclose(y, (x.astype(np.float64) - x.min()) / span, atol=1e-12)
    elif span == 0:
        assert not y.any()


@FAST
@given(x=signals_with_flat_leads(), norm=st.sampled_from(NORMALISATIONS), fs_in=RATES)
def test_flat_leads_and_flat_records_never_divide_by_zero(x, norm, fs_in):
    y = build_transform(fs_in, fs_in, x.shape[1] / fs_in, norm)(x)  # keeps exactly the record: no zero padding
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    flat = np.ptp(x, axis=1) == 0
    if np.ptp(x) == 0 and norm != "none":
        assert not y.any()  # a wholly flat record becomes zeros under every normalisation
    for lead in np.flatnonzero(flat):
        assert np.ptp(y[lead]) == 0  # a flat lead stays flat (zeros per lead; a constant record-wide)
        if norm in ("zscore", "minmax"):
            assert not y[lead].any()


@FAST
@given(x=signals(max_t=400, elements=st.floats(-1e3, 1e3, width=32)))
def test_per_lead_normalisations_unchanged(x):
    """``zscore`` / ``minmax`` still mean per lead (reference formulas), whatever the record-wide ones do."""
    arr = x.astype(np.float64)
    mean, std = arr.mean(axis=1, keepdims=True), arr.std(axis=1, keepdims=True)
    ref_z = np.where(std > 1e-6, (arr - mean) / np.where(std > 1e-6, std, 1.0), 0.0)
    np.testing.assert_allclose(zscore(x), ref_z, atol=1e-9)
    low, span = arr.min(axis=1, keepdims=True), np.ptp(arr, axis=1, keepdims=True)
    ref_m = np.where(span > 1e-12, (arr - low) / np.where(span > 1e-12, span, 1.0), 0.0)
    np.testing.assert_allclose(minmax(x), ref_m, atol=1e-12)
    for name, fn in (("zscore", zscore), ("minmax", minmax), ("zscore_record", zscore_record),
                     ("minmax_record", minmax_record)):
        np.testing.assert_array_equal(normalise(x, name), fn(x))
    np.testing.assert_array_equal(normalise(x, "none"), arr)


def test_record_wide_differs_from_per_lead():
    rng = np.random.default_rng(0)
    scales = np.linspace(0.2, 3.0, 12)[:, None]
    x = rng.normal(size=(12, 2000)) * scales + np.arange(12)[:, None]
    per = build_transform(500, 500, 4.0, "zscore")(x)
    rec = build_transform(500, 500, 4.0, "zscore_record")(x)
    np.testing.assert_allclose(per.std(axis=1), 1.0, atol=1e-5)
    assert abs(rec.mean()) < 1e-5 and abs(rec.std() - 1.0) < 1e-5
    ratio = rec.std(axis=1) / per.std(axis=1)
    np.testing.assert_allclose(ratio / ratio[0], x.std(axis=1) / x.std(axis=1)[0], rtol=1e-5)
    per = build_transform(500, 500, 4.0, "minmax")(x)
    rec = build_transform(500, 500, 4.0, "minmax_record")(x)
    assert (per.min(axis=1) == 0).all() and (per.max(axis=1) == 1).all()
    assert rec.min() == 0 and rec.max() == 1 and np.ptp(rec[0]) < 0.5


def _amplitude(y: np.ndarray, freq: float, fs: int, keep: slice) -> float:
    """Least-squares amplitude of a ``freq`` Hz sinusoid in ``y[keep]``."""
    t = (np.arange(y.size) / fs)[keep]
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y[keep], rcond=None)
    return float(np.hypot(*coef))


@pytest.mark.parametrize("padding", ["scipy", "mirror"])
def test_notch_removes_mains_and_keeps_ecg_band(padding):
    fs = 500
    t = np.arange(10 * fs) / fs
    x = np.tile(np.sin(2 * np.pi * 5 * t) + np.sin(2 * np.pi * 50 * t), (12, 1))
    y = notch(x, fs, 50.0, padding=padding)
    mid = slice(fs, -fs)
    assert _amplitude(y[0], 50, fs, mid) < 1e-3  # from 1
    assert abs(_amplitude(y[0], 5, fs, mid) - 1.0) < 1e-3
    assert _amplitude(y[0], 50, fs, slice(None)) < 0.05  # edges included
    # through the pipeline, as a contract declares it; 60 Hz mains is left alone by a 50 Hz notch
    x60 = np.tile(np.sin(2 * np.pi * 60 * t), (12, 1))
    y60 = build_transform(fs, fs, 10.0, notch_hz=50.0, padding=padding)(x60)
    assert abs(_amplitude(y60[0], 60, fs, mid) - 1.0) < 0.01
    # at or above Nyquist the notch is a no-op, not an error
    np.testing.assert_array_equal(notch(x[:, :1000], 100, 50.0), x[:, :1000])


@pytest.mark.parametrize("padding", ["scipy", "mirror"])
def test_order_4_bandpass_keeps_5hz_removes_drift_and_high_frequency(padding):
    fs = 500
    t = np.arange(10 * fs) / fs
    x = np.tile(np.sin(2 * np.pi * 5 * t) + np.sin(2 * np.pi * 100 * t) + np.sin(2 * np.pi * 0.2 * t), (12, 1))
    y = build_transform(fs, fs, 10.0, bandpass=(0.67, 40.0), bandpass_order=4, padding=padding)(x)
    mid = slice(fs, -fs)
    assert abs(_amplitude(y[0], 5, fs, mid) - 1.0) < 0.01
    assert _amplitude(y[0], 100, fs, mid) < 0.01
    assert _amplitude(y[0], 0.2, fs, mid) < 0.05


def test_median_baseline_removes_offset_and_wander():
    fs = 500
    t = np.arange(10 * fs) / fs
    beat = 0.8 * np.sin(2 * np.pi * 5 * t)
    x = np.tile(3.0 + 1.5 * np.sin(2 * np.pi * 0.2 * t) + beat, (12, 1))
    y = median_baseline(x, fs)
    mid = slice(fs, -fs)
    assert abs(y[0, mid].mean()) < 0.01  # the 3 mV offset is gone
    assert _amplitude(y[0], 0.2, fs, mid) < 0.05  # from 1.5
    assert abs(_amplitude(y[0], 5, fs, mid) - 0.8) < 0.01
    # ECGFounder's window: int(0.4 * fs) + 1 samples, odd, zero-padded ends (scipy.signal.medfilt)
    from scipy.signal import medfilt

    rng = np.random.default_rng(1)
    for rate in (100, 250, 500):
        z = rng.normal(size=(12, 3 * rate))
        kernel = int(0.4 * rate) + 1
        kernel += 1 - kernel % 2
        np.testing.assert_allclose(median_baseline(z, rate), z - np.stack([medfilt(r, kernel) for r in z]))
    assert median_baseline(np.ones((12, 3)), fs).shape == (12, 3)  # shorter than the window


def test_baseline_bool_still_means_highpass():
    x = np.random.default_rng(0).normal(size=(12, 3000)) + np.linspace(0, 5, 3000)
    np.testing.assert_array_equal(build_transform(500, 500, 6.0, baseline=True)(x),
                                  build_transform(500, 500, 6.0, baseline="highpass")(x))
    np.testing.assert_array_equal(build_transform(500, 500, 6.0, baseline=False)(x),
                                  build_transform(500, 500, 6.0, baseline="none")(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"normalisation": "zscore-record"},
        {"notch_hz": -50.0},
        {"notch_hz": float("nan")},
        {"baseline": "wavelet"},
        {"bandpass": (0.5, 40.0), "bandpass_order": 0},
        {"bandpass": (0.5, 40.0), "bandpass_order": 9},
        {"bandpass": (0.5, 40.0), "bandpass_order": 2.0},
        {"padding": "zeros"},
    ],
)
def test_bad_filter_declarations_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        EcgTransform(fs_in=100, fs_out=100, seconds=10, **kwargs)


def test_flat_nan_and_inf_records_give_zeros_record_wide():
    for fill in (7.0, np.nan, np.inf, -np.inf, 3.0e38):
        x = np.full((12, 1000), fill, dtype=np.float32)
        for norm in ("zscore_record", "minmax_record"):
            y = build_transform(100, 100, 10.0, norm)(x)  # same rate: polyphase upsampling ripples a constant
            assert y.shape == (12, 1000) and np.isfinite(y).all() and not y.any(), (fill, norm)
    # one NaN lead among flat ones: sanitised to 0, so the record is no longer flat; still finite
    x = np.full((12, 1000), 7.0, dtype=np.float32)
    x[3] = np.nan
    y = build_transform(100, 100, 10.0, "minmax_record")(x)
    assert np.isfinite(y).all() and not y[3].any() and (y[np.arange(12) != 3] == 1).all()
