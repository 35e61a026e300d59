"""The train-step benchmark times the step of the model a recipe would build, image encoders included."""

from __future__ import annotations

import json

import pytest

from meit.bench import train_step
from meit.errors import ModelError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--llm", "tiny-llama", "--steps", "1", "--warmup", "0", "--ceiling-seconds", "0.05", "--batch", "2",
        "--length", "24"]


def test_an_image_encoder_step_is_timed_on_images_of_the_asked_size(tmp_path, capsys):
    out = tmp_path / "step.json"
    assert train_step.main([*TINY, "--encoder", "convnext-toy-image", "--image-mode", "paper-3x4",
                            "--image-size", "64", "128", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "paper-3x4 image 64×128 px" in result["config"]["image"]
    assert result["full_step_s"] > 0 and result["full_step_gflop"] > result["bare_step_gflop"]
    assert "convnext-toy-image reading 12 leads" in capsys.readouterr().out


def test_a_signal_step_has_no_image_and_an_image_mode_needs_an_image_encoder(tmp_path):
    out = tmp_path / "step.json"
    assert train_step.main([*TINY, "--encoder", "resnet1d-tiny", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["config"]["image"] is None
    with pytest.raises(ModelError, match="reads the signal, but the contract asks for a paper-3x4 image"):
        train_step.main([*TINY, "--encoder", "resnet1d-tiny", "--image-mode", "paper-3x4"])
