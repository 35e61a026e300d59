"""Paper denoising (grid removal, background flattening) and the contract field that asks for it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from meit.data.contract import EncoderContract, checked_contract
from meit.errors import ConfigError, ModelError
from meit.render import Augmentation, augment, denoise_paper, render_paper
from meit.render.denoise import DENOISE_METHODS


def _page(dpi: int = 50) -> np.ndarray:
    t = np.arange(1000) / 100
    signal = np.stack([0.8 * np.sin(2 * np.pi * 1.2 * t) * (lead % 3 + 1) / 3 for lead in range(12)])
    return render_paper(signal, 100, layout="3x4", dpi=dpi, seconds=10).image


def test_grid_removal_whitens_the_grid_and_keeps_the_ink():
    page = _page()
    clean = denoise_paper(page, "grid+flatten")
    assert clean.shape == page.shape and clean.dtype == np.uint8
    assert (clean[..., 0] == clean[..., 1]).all() and (clean[..., 1] == clean[..., 2]).all()
    red, green = page[..., 0].astype(int), page[..., 1].astype(int)
    grid = (red - green > 20) & (green > 100)  # grid lines, blended with the paper (no ink nearby)
    ink = (page < 40).all(-1)
    assert grid.mean() > 0.1 and ink.sum() > 500
    assert (clean[grid][:, 0] == 255).mean() > 0.99  # the rest: grid pixels that touch a trace
    assert np.median(clean[ink][:, 0]) < 40


def test_flattening_takes_a_shadow_out_where_grid_removal_alone_cannot():
    page = _page()
    reference = denoise_paper(page, "grid+flatten")[..., 0].astype(float)
    for seed in (2, 3):  # photometric effects only: pixels stay where they were
        shadowed = augment(page, Augmentation(shadow=1.0, colour=1.0), seed=seed)
        both = denoise_paper(shadowed, "grid+flatten")[..., 0].astype(float)
        grid_only = denoise_paper(shadowed, "grid")[..., 0].astype(float)
        # denoised, the shadowed page is the clean page denoised; without flattening the shade stays on the paper
        assert np.abs(both - reference).mean() < 0.5
        assert np.abs(grid_only - reference).mean() > 10


def test_none_returns_the_page_and_a_bad_method_or_image_is_refused():
    page = _page(25)
    assert denoise_paper(page, "none") is page
    with pytest.raises(ValueError, match="denoise method must be one of"):
        denoise_paper(page, "median")
    with pytest.raises(ValueError, match=r"\(height, width, 3\) uint8"):
        denoise_paper(page.astype(np.float32), "grid")


@settings(max_examples=40, deadline=None)
@given(image=arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))),
       method=st.sampled_from(DENOISE_METHODS))
def test_any_image_keeps_its_shape_and_type(image, method):
    out = denoise_paper(image, method)
    assert out.shape == image.shape and out.dtype == np.uint8


def test_the_contract_declares_denoising_for_paper_only():
    paper = checked_contract({"fs": 100, "normalisation": "none", "image_mode": "paper-3x4",
                              "image_denoise": "grid+flatten"}, "model.")
    assert paper.image_denoise == "grid+flatten"
    assert "denoised (grid+flatten)" in paper.describe()
    plain = checked_contract({"fs": 100, "normalisation": "none", "image_mode": "paper-3x4"}, "model.")
    assert plain != paper  # the weights read another image
    with pytest.raises(ConfigError, match=r"'model\.image_denoise' must be one of"):
        checked_contract({"fs": 100, "normalisation": "none", "image_mode": "paper-3x4", "image_denoise": "blur"},
                         "model.")
    with pytest.raises(ConfigError, match=r"'model\.image_denoise' applies to paper images only"):
        checked_contract({"fs": 100, "image_mode": "gaf", "image_size": 32, "normalisation": "none",
                          "image_denoise": "grid"}, "model.")
    with pytest.raises(ConfigError, match=r"'model\.image_denoise' is set but 'model\.image_mode' is none"):
        checked_contract({"fs": 100, "image_denoise": "grid"}, "model.")


def test_the_transform_denoises_after_augmentation_at_training_and_evaluation():
    contract = EncoderContract(fs=100, normalisation="none", image_mode="paper-3x4", image_size=(64, 96),
                               image_denoise="grid+flatten", image_augment=(("shadow", 1.0),))
    signal = np.zeros((12, 1000), dtype=np.float32)
    evaluation = contract.load_transform(100)(signal, record_id="r1")
    training = contract.load_transform(100, augment=True)(signal, record_id="r1", epoch=0)
    # denoised pages are grey (three equal channels, before per-channel normalisation)
    mean = np.asarray(contract.image_mean)[:, None, None]
    std = np.asarray(contract.image_std)[:, None, None]
    for image in (evaluation, training):
        pixels = image * std + mean
        assert np.allclose(pixels[0], pixels[1], atol=1e-5) and np.allclose(pixels[1], pixels[2], atol=1e-5)
    # the shadow is flattened away: the augmented page is mostly white paper, like the clean one
    assert (training * std + mean).mean() > 0.9


def test_an_artifact_of_a_denoising_encoder_is_version_4_and_older_readers_refuse_it(tmp_path, monkeypatch):
    from meit.models.encoders import artifact as artifact_module
    from meit.models.encoders import build_encoder, read_encoder_metadata, write_encoder_artifact

    contract = EncoderContract(fs=100, normalisation="none", image_mode="paper-3x4", image_size=(64, 96),
                               image_denoise="grid")
    out = write_encoder_artifact(tmp_path / "enc", "resnet-toy-image", build_encoder("resnet-toy-image", contract),
                                 contract)
    data = json.loads((out / "encoder.json").read_text())
    assert data["version"] == 4 and data["contract"]["image_denoise"] == "grid"
    assert read_encoder_metadata(out).contract == contract
    monkeypatch.setattr(artifact_module, "ARTIFACT_VERSION", 3)
    with pytest.raises(ModelError, match="'version' 4 was written by a newer meit"):
        read_encoder_metadata(out)
    monkeypatch.undo()
    (out / "encoder.json").write_text(json.dumps({**data, "version": 3}))
    with pytest.raises(ModelError, match="needs format version 4"):
        read_encoder_metadata(out)
    # an image contract without denoising is still version 3
    plain = EncoderContract(fs=100, normalisation="none", image_mode="paper-3x4", image_size=(64, 96))
    out3 = write_encoder_artifact(tmp_path / "enc3", "resnet-toy-image", build_encoder("resnet-toy-image", plain),
                                  plain)
    assert json.loads((out3 / "encoder.json").read_text())["version"] == 3
