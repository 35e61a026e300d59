"""Scan/photo augmentations: strength 0 is the identity, same seed same bytes, measured effects within bounds."""

from __future__ import annotations

import numpy as np
import pytest

from meit.errors import ConfigError, DataError
from meit.render import EFFECTS, Augmentation, augment, augmentation_parameters, geometry_matrix, render_paper


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(1000) / 100
    signal = 0.8 * np.sin(2 * np.pi * 1.2 * t)[None, :] + rng.normal(0, 0.05, size=(12, 1000))
    return render_paper(signal, 100, dpi=72).image


def test_all_strengths_zero_is_the_identity(page):
    out = augment(page, Augmentation(), seed=5)
    assert out.tobytes() == page.tobytes() and out is not page
    assert not Augmentation().active and augmentation_parameters(Augmentation(), 5, 10, 10) == {}


@pytest.mark.parametrize("effect", EFFECTS)
def test_each_effect_changes_the_page_and_only_when_on(effect, page):
    on = augment(page, Augmentation(**{effect: 0.6}), seed=1)
    assert on.shape == page.shape and on.dtype == np.uint8
    assert on.tobytes() != page.tobytes()
    others_off = Augmentation(**{e: 0.6 for e in EFFECTS if e != effect}, **{effect: 0.0})
    assert effect not in augmentation_parameters(others_off, 1, *page.shape[:2])


def test_same_seed_same_bytes_other_seed_other_bytes(page):
    strong = Augmentation.uniform(0.7)
    a, b = augment(page, strong, seed=11), augment(page, strong, seed=11)
    assert a.tobytes() == b.tobytes()
    assert augment(page, strong, seed=12).tobytes() != a.tobytes()


def test_one_effects_draw_does_not_depend_on_the_others():
    alone = augmentation_parameters(Augmentation(rotation=0.5), 9, 100, 200)
    together = augmentation_parameters(Augmentation(rotation=0.5, noise=1.0, marks=0.3), 9, 100, 200)
    assert alone["rotation"] == together["rotation"]


def _line_image(height: int = 300, width: int = 600) -> np.ndarray:
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    image[height // 2 - 1:height // 2 + 2, 100:width - 100] = 0  # a long horizontal line through the centre
    return image


@pytest.mark.parametrize("strength", [0.2, 0.6, 1.0])
def test_measured_rotation_is_within_the_documented_range(strength):
    image = _line_image()
    for seed in range(6):
        out = augment(image, Augmentation(rotation=strength), seed)
        ys, xs = np.nonzero(out.min(axis=2) < 128)
        slope = np.polyfit(xs, ys, 1)[0]
        measured = -np.degrees(np.arctan(slope))  # counter-clockwise positive (image y points down)
        drawn = augmentation_parameters(Augmentation(rotation=strength), seed, *image.shape[:2])["rotation"]["degrees"]
        assert measured == pytest.approx(drawn, abs=0.1)
        assert 2.5 * strength - 0.1 <= abs(measured) <= 5.0 * strength + 0.1


def _edge_sigma(image: np.ndarray) -> float:
    """Blur of a vertical black/white edge: the standard deviation of its derivative profile."""
    profile = image[40:-40, :, 0].astype(np.float64).mean(axis=0)
    slope = np.clip(np.diff(profile), 0, None)
    x = np.arange(len(slope)) + 0.5
    mean = (x * slope).sum() / slope.sum()
    return float(np.sqrt(((x - mean) ** 2 * slope).sum() / slope.sum()))


@pytest.mark.parametrize("strength", [0.3, 0.7, 1.0])
def test_measured_blur_is_within_the_documented_range(strength):
    image = np.zeros((120, 120, 3), dtype=np.uint8)
    image[:, 60:] = 255
    sharp = _edge_sigma(image)
    for seed in range(4):
        sigma = augmentation_parameters(Augmentation(blur=strength), seed, 120, 120)["blur"]["sigma_px"]
        assert strength * 1.0 <= sigma <= strength * 2.0
        measured = np.sqrt(max(_edge_sigma(augment(image, Augmentation(blur=strength), seed)) ** 2 - sharp**2, 0))
        assert measured == pytest.approx(sigma, abs=0.25)


def test_measured_noise_matches_its_sigma():
    grey = np.full((200, 200, 3), 128, dtype=np.uint8)
    for seed in range(3):
        out = augment(grey, Augmentation(noise=1.0), seed)
        sigma = augmentation_parameters(Augmentation(noise=1.0), seed, 200, 200)["noise"]["sigma"]
        assert 6.0 <= sigma <= 12.0
        assert out.astype(float).std() == pytest.approx(sigma, rel=0.08)


@pytest.mark.parametrize("strength", [0.1, 0.5, 1.0])
def test_drawn_parameters_respect_their_bounds(strength):
    height, width = 400, 600
    everything = Augmentation.uniform(strength)
    for seed in range(30):
        p = augmentation_parameters(everything, seed, height, width)
        corners = np.array(p["perspective"]["corners"])
        frame = np.array([[0, 0], [width, 0], [width, height], [0, height]])
        assert (np.abs(corners - frame) <= 0.06 * strength * np.array([width, height]) + 1e-6).all()
        assert 95 - 85 * strength - 1 <= p["jpeg"]["quality"] <= 95 - 42.5 * strength + 1
        assert all(abs(g - 1) <= 0.15 * strength for g in p["colour"]["gains"])
        assert 0.2 * strength <= abs(p["contrast"]["factor"] - 1) <= 0.4 * strength
        assert abs(p["contrast"]["offset"]) <= 30 * strength
        assert 0.25 * strength <= p["shadow"]["depth"] <= 0.5 * strength
        folds = p["crease"]["folds"]
        assert len(folds) == (1 if strength < 0.5 else 2)
        assert all(0.175 * strength <= f["depth"] <= 0.35 * strength for f in folds)
        strokes = p["marks"]["strokes"]
        assert len(strokes) == int(np.ceil(5 * strength))
        for stroke in strokes:
            points = np.array(stroke["points"])
            assert np.linalg.norm(np.diff(points, axis=0), axis=1).sum() <= 0.3 * strength * width + 1e-6


def test_geometry_matrix_says_where_a_point_of_the_page_goes():
    image = np.full((200, 300, 3), 255, dtype=np.uint8)
    image[40:44, 250:254] = 0  # a dot centred at (252, 42)
    strong = Augmentation(rotation=1.0, perspective=1.0)
    for seed in range(4):
        matrix = geometry_matrix(augmentation_parameters(strong, seed, 200, 300), 200, 300)
        x, y, w = matrix @ np.array([252.0, 42.0, 1.0])
        ys, xs = np.nonzero(augment(image, strong, seed).min(axis=2) < 160)
        assert xs.mean() + 0.5 == pytest.approx(x / w, abs=0.75) and ys.mean() + 0.5 == pytest.approx(y / w, abs=0.75)
    assert (geometry_matrix({}, 10, 10) == np.eye(3)).all()


def test_parse_reads_effects_and_all():
    assert Augmentation.parse("rotation=0.3, blur=0.2") == Augmentation(rotation=0.3, blur=0.2)
    assert Augmentation.parse("all=0.5,blur=0") == Augmentation(**{**dict.fromkeys(EFFECTS, 0.5), "blur": 0.0})
    assert Augmentation.parse(None) == Augmentation.parse("") == Augmentation()


@pytest.mark.parametrize(("text", "match"), [
    ("rotate=0.3", "unknown effect"), ("rotation", "effect=strength"), ("blur=x", "blur"), ("noise=1.5", "noise"),
    ("jpeg=-0.1", "jpeg"),
])
def test_parse_errors_name_the_effect(text, match):
    with pytest.raises(ConfigError, match=match):
        Augmentation.parse(text)


def test_bad_strength_seed_or_image_are_typed_errors(page):
    with pytest.raises(ConfigError, match="crease"):
        Augmentation(crease=2)
    with pytest.raises(ConfigError, match="marks"):
        Augmentation(marks=True)
    with pytest.raises(ConfigError, match="seed"):
        augment(page, Augmentation(blur=0.5), seed=-1)
    with pytest.raises(DataError, match="uint8"):
        augment(page.astype(np.float32), Augmentation(blur=0.5), seed=0)
    with pytest.raises(DataError, match="uint8"):
        augment(page[:, :, 0], Augmentation(blur=0.5), seed=0)
