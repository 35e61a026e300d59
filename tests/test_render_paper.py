"""Paper rendering: pixel geometry (10 mm/mV, 25 mm/s), lead boxes, calibration pulse, bad input, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meit.errors import ConfigError, DataError
from meit.leads import CANONICAL_LEADS
from meit.render import LAYOUTS, render_paper

BARE = {"grid": False, "calibration": False, "labels": False}  # only the traces are dark


def ink(image: np.ndarray) -> np.ndarray:
    """Darkness 0–1 per pixel (white paper = 0)."""
    return (255.0 - image.astype(np.float64).mean(axis=2)) / 255.0


def box_of(sidecar: dict, lead: str, index: int = 0) -> dict:
    return [b for b in sidecar["boxes"] if b["lead"] == lead][index]


def column_centre(dark: np.ndarray, column: int, box: dict | None = None) -> float:
    """Vertical centre of the ink in one pixel column, within ``box``'s rows (pixel r spans [r, r + 1))."""
    r0, r1 = (int(np.floor(box["y0"])), int(np.ceil(box["y1"]))) if box else (0, dark.shape[0])
    weights = dark[r0:r1, column]
    return float(((np.arange(r0, r1) + 0.5) * weights).sum() / weights.sum())


@pytest.mark.parametrize("dpi", [100, 200, 300])
def test_a_1_mv_step_is_10_mm_high_and_sits_on_the_baseline(dpi):
    fs = 500
    signal = np.zeros((12, 10 * fs))
    signal[0, int(0.5 * fs):int(1.5 * fs)] = 1.0  # lead I: a 1 mV square pulse from 0.5 to 1.5 s
    out = render_paper(signal, fs, dpi=dpi, **BARE)
    side = out.sidecar
    px_per_mm = dpi / 25.4
    assert side["px_per_mm"] == pytest.approx(px_per_mm)
    assert side["px_per_mv"] == pytest.approx(10 * px_per_mm)
    box = box_of(side, "I")
    dark = ink(out.image)
    low_col = int(box["x0"] + 0.25 * side["px_per_s"])
    high_col = int(box["x0"] + 1.0 * side["px_per_s"])
    low, high = column_centre(dark, low_col, box), column_centre(dark, high_col, box)
    assert low == pytest.approx(box["baseline_y"], abs=1.0)
    assert low - high == pytest.approx(10 * px_per_mm, abs=1.0)  # 10 mm per mV


@pytest.mark.parametrize("dpi", [100, 200])
def test_one_second_is_25_mm(dpi):
    fs = 500
    signal = np.zeros((12, 10 * fs))
    for t in (1.0, 2.0, 7.0):
        signal[1, int(t * fs)] = 1.5  # one-sample spikes in lead II (drawn in the rhythm strip at every t)
    out = render_paper(signal, fs, dpi=dpi, **BARE)
    side = out.sidecar
    strip = box_of(side, "II", 1)
    assert strip["t0_s"] == 0 and strip["t1_s"] == pytest.approx(10 - 1 / fs)
    dark = ink(out.image)
    top = int(strip["baseline_y"] - 0.75 * side["px_per_mv"])  # a row only the spikes reach
    columns = np.flatnonzero(dark[top] > 0.2)
    peaks = [columns[columns < columns[0] + 5].mean()]
    for c in columns:
        if c > peaks[-1] + 5:
            peaks.append(columns[(columns >= c) & (columns < c + 5)].mean())
    assert len(peaks) == 3
    px_per_mm = dpi / 25.4
    assert peaks[1] - peaks[0] == pytest.approx(25 * px_per_mm, abs=1.0)
    assert peaks[2] - peaks[0] == pytest.approx(6 * 25 * px_per_mm, abs=1.0)
    assert peaks[0] + 0.5 == pytest.approx(side["trace_x0"] + 1.0 * side["px_per_s"], abs=1.0)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_leads_trace_lies_in_the_boxes_the_sidecar_names(layout):
    fs, t = 250, np.arange(2500) / 250
    flat = render_paper(np.zeros((12, 2500)), fs, layout=layout, **BARE)
    counts = {}
    for k, lead in enumerate(CANONICAL_LEADS):
        signal = np.zeros((12, 2500))
        signal[k] = 3.0 * np.sin(2 * np.pi * 1.3 * t)  # big enough to reach its box edges (clipped there)
        out = render_paper(signal, fs, layout=layout, **BARE)
        changed = np.argwhere((out.image != flat.image).any(axis=2))
        boxes = [b for b in out.sidecar["boxes"] if b["lead"] == lead]
        inside = np.zeros(len(changed), dtype=bool)
        for b in boxes:
            in_rows = (changed[:, 0] >= np.floor(b["y0"])) & (changed[:, 0] < np.ceil(b["y1"]))
            in_cols = (changed[:, 1] >= np.floor(b["x0"])) & (changed[:, 1] < np.ceil(b["x1"]))
            assert (in_rows & in_cols).sum() > 0.5 * (b["x1"] - b["x0"]), (layout, lead, b)  # drawn in every box
            inside |= in_rows & in_cols
        assert inside.all(), (layout, lead, changed[~inside][:5])
        counts[lead] = len(boxes)
    expected_strips = {"3x4": {"II": 2}, "6x2": {}, "12x1": {}}[layout]
    assert counts == {lead: expected_strips.get(lead, 1) for lead in CANONICAL_LEADS}


@pytest.mark.parametrize(("dpi", "speed", "gain"), [(100, 25.0, 10.0), (200, 25.0, 10.0), (150, 50.0, 5.0)])
def test_calibration_pulse_is_1_mv_by_0_2_s(dpi, speed, gain):
    out = render_paper(np.zeros((12, 1000)), 100, dpi=dpi, speed_mm_s=speed, gain_mm_mv=gain, grid=False,
                       labels=False)
    side = out.sidecar
    dark = ink(out.image)
    baseline = side["boxes"][0]["baseline_y"]
    left = dark[:, : int(side["trace_x0"])]
    row_top = int(baseline - 0.5 * side["px_per_mv"])  # halfway up the pulse: its two vertical edges
    edges = np.flatnonzero(left[row_top] > 0.3)
    width = edges.max() - edges.min()
    assert width == pytest.approx(0.2 * side["px_per_s"], abs=1.5)
    top_col = int((edges.min() + edges.max()) / 2)
    tops = np.flatnonzero(dark[:, top_col] > 0.2)
    above = {"y0": side["boxes"][0]["y0"], "y1": baseline - 3}  # the pulse's top edge, not its baseline
    pulse_top = column_centre(dark, top_col, above)
    assert baseline - pulse_top == pytest.approx(side["px_per_mv"], abs=1.0)
    assert side["px_per_mv"] == pytest.approx(gain * dpi / 25.4)
    assert tops.min() >= np.floor(side["boxes"][0]["y0"])


def test_grid_is_pink_and_bold_every_5_mm():
    out = render_paper(np.zeros((12, 1000)), 100, dpi=200, calibration=False, labels=False)
    image = out.image.astype(int)
    row = int(out.sidecar["boxes"][0]["y0"]) + 3
    line = image[row]
    ppm = out.sidecar["px_per_mm"]
    bold = [round(k * 5 * ppm) for k in range(1, 8)]
    fine = [round((k * 5 + 2) * ppm) for k in range(1, 8)]
    assert all(line[c, 0] > line[c, 1] + 40 for c in bold)  # red dominates: pink/red paper
    assert np.mean([line[c, 1] for c in bold]) < np.mean([line[c, 1] for c in fine]) < 250
    assert (image[row + 2, round(2.5 * ppm)] == 255).all()  # paper between lines is white


def test_labels_and_the_rhythm_strip_are_drawn():
    with_labels = render_paper(np.zeros((12, 1000)), 100, grid=False, calibration=False)
    bare = render_paper(np.zeros((12, 1000)), 100, **BARE)
    diff = (with_labels.image != bare.image).any(axis=2)
    for b in with_labels.sidecar["boxes"]:
        region = diff[int(b["y0"]):int(b["y0"] + 6 * with_labels.sidecar["px_per_mm"]),
                      int(b["x0"]):int(b["x0"] + 12 * with_labels.sidecar["px_per_mm"])]
        assert region.any(), b["lead"]
    assert [b["rhythm_strip"] for b in with_labels.sidecar["boxes"]].count(True) == 1


def test_same_signal_same_bytes_and_the_sidecar_is_json():
    import json

    rng = np.random.default_rng(0)
    signal = rng.normal(0, 0.3, size=(12, 5000))
    a, b = render_paper(signal, 500), render_paper(signal, 500)
    assert a.image.tobytes() == b.image.tobytes() and a.sidecar == b.sidecar
    assert json.loads(json.dumps(a.sidecar)) == a.sidecar
    assert a.image.flags.writeable  # a fresh array, not the cached background
    a.image[:] = 0
    assert render_paper(signal, 500).image.tobytes() == b.image.tobytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_a_data_error_naming_the_lead(bad):
    signal = np.zeros((12, 500))
    signal[7, 123] = bad
    with pytest.raises(DataError, match=r"non-finite.*V2"):
        render_paper(signal, 500)


@pytest.mark.parametrize("shape", [(11, 500), (12,), (12, 0), (500, 12), (1, 12, 500)])
def test_wrong_shapes_are_data_errors(shape):
    with pytest.raises(DataError, match="expected shape"):
        render_paper(np.zeros(shape), 500)


@pytest.mark.parametrize("fs", [0, -5, float("nan"), "500", None])
def test_bad_sampling_rate_is_a_data_error(fs):
    with pytest.raises(DataError, match="fs="):
        render_paper(np.zeros((12, 500)), fs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"layout": "4x3"}, "layout"), ({"dpi": 10}, "dpi"), ({"dpi": 100.0}, "dpi"), ({"speed_mm_s": 0}, "speed_mm_s"),
    ({"gain_mm_mv": float("inf")}, "gain_mm_mv"), ({"seconds": -1}, "seconds"),
])
def test_bad_settings_are_config_errors_naming_the_setting(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        render_paper(np.zeros((12, 500)), 500, **kwargs)


def test_a_short_record_fills_only_the_boxes_it_reaches():
    fs = 257
    signal = np.full((12, int(0.3 * fs)), 0.5)
    out = render_paper(signal, fs, **BARE)
    side = out.sidecar
    first = box_of(side, "I")
    later = box_of(side, "aVR")
    assert first["t1_s"] == pytest.approx((int(0.3 * fs) - 1) / fs)
    assert later["samples"][0] == later["samples"][1] and later["t0_s"] == later["t1_s"]
    dark = ink(out.image)
    assert dark[int(later["y0"]):int(later["y1"]), int(later["x0"]) + 1:int(later["x1"])].max() == 0


def test_a_longer_record_shows_its_first_seconds():
    fs = 100
    signal = np.zeros((12, 30 * fs))
    signal[:, 12 * fs:] = 1.0  # only after 12 s: not on a 10 s page
    out = render_paper(signal, fs, **BARE)
    reference = render_paper(np.zeros((12, 10 * fs + 1)), fs, **BARE)  # the sample at 10 s closes the page
    assert out.image.tobytes() == reference.image.tobytes()
    assert out.sidecar["record_seconds"] == 30 and out.sidecar["seconds_shown"] == 10


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 3000),
    fs=st.sampled_from([100, 250, 257, 500, 1000, 99.5]),
    scale=st.sampled_from([0.0, 1e-6, 0.5, 3.0, 1e6]),
    layout=st.sampled_from(sorted(LAYOUTS)),
    dpi=st.sampled_from([30, 72, 100]),
    flat_leads=st.lists(st.integers(0, 11), max_size=12),
    seed=st.integers(0, 2**16),
)
def test_any_finite_signal_renders_inside_its_page(n, fs, scale, layout, dpi, flat_leads, seed):
    signal = np.random.default_rng(seed).normal(0, 1, size=(12, n)) * scale
    signal[flat_leads] = 0.0
    out = render_paper(signal.astype(np.float32), fs, layout=layout, dpi=dpi)
    side = out.sidecar
    assert out.image.dtype == np.uint8 and out.image.shape == (side["height"], side["width"], 3)
    assert len(side["boxes"]) == sum(len(r) for r in LAYOUTS[layout].rows) + len(LAYOUTS[layout].rhythm)
    for b in side["boxes"]:
        assert 0 <= b["x0"] < b["x1"] <= side["width"] and 0 <= b["y0"] < b["y1"] <= side["height"]
        assert b["y0"] < b["baseline_y"] < b["y1"]
        assert 0 <= b["t0_s"] <= b["t1_s"] <= side["record_seconds"]
        assert 0 <= b["samples"][0] <= b["samples"][1] <= n


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 400), where=st.integers(0, 10**6), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_any_non_finite_sample_is_refused(n, where, bad):
    signal = np.zeros((12, n))
    signal.flat[where % signal.size] = bad
    with pytest.raises(DataError, match="non-finite"):
        render_paper(signal, 500)
