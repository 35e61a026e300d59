"""The image path end to end: load-time rendering (determinism, no augmentation at evaluation), `meit train` +
`meit eval` through the CLI, and image–text pretraining + retrieval with an image encoder as the ECG tower."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from meit.cli import main
from meit.config import load_recipe
from meit.data.contract import checked_contract
from meit.data.image_transform import ImageTransform, sample_seed

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"fs": 100, "seconds": 10.0, "normalisation": "none", "image_mode": "paper-3x4", "image_size": [64, 96]}


def _signal(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(1000) / 100
    return (np.sin(2 * np.pi * 1.2 * t)[None] * rng.uniform(0.3, 1.5, (12, 1)) + 0.02 * rng.standard_normal(
        (12, 1000))).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# load-time rendering


def test_training_augmentation_is_seeded_per_record_and_epoch():
    contract = checked_contract({**PAPER, "image_augment": {"rotation": 0.5, "noise": 0.5, "blur": 0.3}}, "model.")
    train = contract.load_transform(100, augment=True)
    assert isinstance(train, ImageTransform) and train.augments
    x = _signal()
    first = train(x, record_id="r1", epoch=0)
    assert first.shape == (3, 64, 96) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, train(x, record_id="r1", epoch=0))  # a resumed epoch draws the same
    np.testing.assert_array_equal(first, contract.load_transform(100, augment=True)(x, record_id="r1", epoch=0))
    assert not np.array_equal(first, train(x, record_id="r1", epoch=1))
    assert not np.array_equal(first, train(x, record_id="r2", epoch=0))
    assert sample_seed("r1", 0) == sample_seed("r1", 0) != sample_seed("r1", 1)


def test_evaluation_never_augments():
    contract = checked_contract({**PAPER, "image_augment": {"rotation": 1.0, "noise": 1.0}}, "model.")
    clean = checked_contract(PAPER, "model.")
    evaluation = contract.load_transform(100)  # augment defaults to False
    assert not evaluation.augments
    x = _signal()
    reference = clean.load_transform(100)(x)
    for epoch in (0, 3):
        np.testing.assert_array_equal(evaluation(x, record_id="r1", epoch=epoch), reference)


def test_paper_pixels_are_normalised_per_channel():
    contract = checked_contract({**PAPER, "image_size": [160, 256]}, "model.")
    assert contract.image_dpi == 25  # drawn at about the image's height: 172 × 266 px
    image = contract.load_transform(100)(np.zeros((12, 1000), np.float32))
    mean, std = np.array(contract.image_mean), np.array(contract.image_std)
    pixels = image * std[:, None, None] + mean[:, None, None]  # back to [0, 1]
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert np.median(pixels[0]) > 0.9  # mostly paper: white, or the pink grid (red channel high)
    assert pixels.min() < 0.2  # the flat traces and labels in black ink


@pytest.mark.parametrize("mode", ["gaf", "rp", "mtf"])
def test_signal_encodings_have_one_channel_per_lead(mode):
    contract = checked_contract({"fs": 100, "seconds": 10.0, "image_mode": mode, "image_size": 32}, "model.")
    image = contract.load_transform(100)(_signal())
    assert image.shape == contract.input_shape == (12, 32, 32) and np.isfinite(image).all()


def test_datasets_augment_the_training_split_only(prepared_100hz):
    from meit.data.dataset import report_dataset
    from meit.data.prompts import PromptFormat
    from meit.models.backbones import resolve_backbone
    from meit.models.loading import load_tokenizer, source_folder

    spec = resolve_backbone("tiny-gpt2")
    tokenizer = load_tokenizer(source_folder(spec), False)
    fmt = PromptFormat(template="plain", num_ecg_tokens=1, placement="start", placeholder_id=3, max_length=96)
    contract = checked_contract({**PAPER, "image_augment": {"rotation": 0.6, "shadow": 0.6}}, "model.")

    def item(augment: bool, epoch: int) -> torch.Tensor:
        dataset = report_dataset(prepared_100hz, "train", tokenizer=tokenizer, prompt_format=fmt, contract=contract,
                                 max_samples=2, augment=augment)
        dataset.set_epoch(epoch)
        return dataset[0]["ecg"]

    assert item(True, 0).shape == (3, 64, 96)
    assert torch.equal(item(True, 0), item(True, 0)) and not torch.equal(item(True, 0), item(True, 1))
    assert torch.equal(item(False, 0), item(False, 4))
    assert not torch.equal(item(False, 0), item(True, 0))


# ------------------------------------------------------------------------------------------------
# meit train + meit eval through the CLI


@pytest.mark.slow
def test_cli_train_and_eval_with_an_image_encoder(prepared_100hz, synthetic_raw, tmp_path, capsys):
    recipe_file = tmp_path / "image.yaml"
    recipe_file.write_text(yaml.safe_dump({
        "output_dir": str(tmp_path / "run"),
        "data": {"path": str(prepared_100hz), "fs": 100, "max_eval_samples": 4},
        "model": {"llm": "tiny-gpt2", "encoder": "resnet-toy-image", "normalisation": "none",
                  "image_mode": "paper-3x4", "image_size": [64, 96],
                  "image_augment": {"rotation": 0.3, "blur": 0.3}, "lora": {"r": 4, "alpha": 8}, "max_length": 96},
        "train": {"batch_size": 4, "max_steps": 3, "trackers": [], "log_every": 1},
    }))
    assert main(["train", str(recipe_file), "--no-progress"]) == 0
    final = tmp_path / "run" / "final"
    meta = json.loads((final / "meit_model.json").read_text())
    assert meta["encoder_contract"]["image_mode"] == "paper-3x4"
    assert meta["encoder_contract"]["image_augment"] == {"blur": 0.3, "rotation": 0.3}
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(final), "--data", str(prepared_100hz), "--split", "test",
                 "--out", str(out), "--max-samples", "3", "--max-new-tokens", "5", "--no-meteor",
                 "--control", "shuffled", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["provenance"]["n"] == 3 and "shuffled" in metrics["controls"]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 3
    # one record through `meit generate` (drawn by the same transform), and the generation benchmark
    record = sorted((synthetic_raw / "records100").rglob("*.hea"))[0].with_suffix("")
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(final), "--ecg", str(record), "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.strip()
    from meit.bench.generation import main as generation_bench

    assert generation_bench(["--checkpoint", str(final), "--batch-sizes", "2", "--reports", "2",
                             "--new-tokens", "2"]) == 0


# ------------------------------------------------------------------------------------------------
# image–text pretraining and retrieval


@pytest.mark.slow
def test_image_pretrain_then_retrieve(prepared_100hz, tmp_path, capsys):
    from meit.pretrain import EcgTextModel, PretrainRecipe
    from meit.retrieval.pretraining import pretrain_and_evaluate

    recipe = load_recipe(None, [
        f"data.path={prepared_100hz}", f"output_dir={tmp_path / 'pre'}", "data.fs=100", "ecg.encoder=vit-toy-image",
        "ecg.normalisation=none", "ecg.image_mode=gaf", "ecg.image_size=32", "text.freeze_layers=5",
        "text.max_length=48", "objective.embed_dim=16", "train.batch_size=8", "train.max_steps=2",
        "train.trackers=[]", "eval.max_samples=16", "eval.min_positives=1", "eval.batch_size=8"],
        schema=PretrainRecipe)
    result = pretrain_and_evaluate(recipe, progress=False)
    encoder_json = json.loads((result.final_dir / "encoder.json").read_text())
    assert encoder_json["version"] == 3 and encoder_json["contract"]["image_mode"] == "gaf"
    assert 0 <= result.metrics["ecg_to_report"]["recall@1"] <= 1
    model = EcgTextModel.from_pretrained(result.final_dir)
    assert model.contract.input_shape == (12, 32, 32)
    # the artifact drops into `meit train`: unset image keys take its contract, a contradicting one is refused
    from meit.config import ModelConfig
    from meit.errors import ModelError
    from meit.models import MeitModel

    tuned = MeitModel.build(ModelConfig(llm="tiny-gpt2", encoder="auto", encoder_checkpoint=str(result.final_dir),
                                        lora={"r": 4, "alpha": 8}), data_fs=100, data_seconds=10.0)
    assert tuned.contract == model.contract
    tuned.save_pretrained(tmp_path / "tuned")
    assert MeitModel.from_pretrained(tmp_path / "tuned").contract == model.contract
    with pytest.raises(ModelError, match=r"model.image_size=\[64,64\] \(checkpoint: \[32,32\]\)"):
        MeitModel.build(ModelConfig(llm="tiny-gpt2", encoder_checkpoint=str(result.final_dir), image_mode="gaf",
                                    image_size=64), data_fs=100, data_seconds=10.0)
    index = tmp_path / "index"
    assert main(["retrieve", "build", str(result.final_dir), str(prepared_100hz), "--split", "train",
                 "--out", str(index), "--max-samples", "12", "--no-progress"]) == 0
    assert main(["retrieve", "eval", str(index), "--queries", str(prepared_100hz), "--split", "train",
                 "--max-samples", "12", "--ks", "1", "5", "--out", str(tmp_path / "m.json"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["ecg_to_ecg"]["self_excluded"] == 12 and 0 <= metrics["ecg_to_report"]["recall@5"] <= 1


def test_masking_objectives_are_refused_for_images(prepared_100hz, tmp_path):
    from meit.errors import ConfigError
    from meit.pretrain import EcgTextModel, PretrainRecipe

    recipe = load_recipe(None, [f"data.path={prepared_100hz}", "data.fs=100", "ecg.encoder=resnet-toy-image",
                                "ecg.normalisation=none", "ecg.image_mode=rp", "ecg.image_size=32",
                                "objective.mask_ratio=0.3"], schema=PretrainRecipe)
    with pytest.raises(ConfigError, match=r"objective.mask_ratio"):
        EcgTextModel.build(recipe)


def test_quickstart_image_recipe_validates():
    recipe = load_recipe(ROOT / "recipes" / "quickstart_image.yaml", [f"data.path={ROOT}"])
    assert recipe.model.encoder.endswith("-image") and recipe.model.image_mode.startswith("paper-")
    signal = load_recipe(ROOT / "recipes" / "quickstart.yaml", [f"data.path={ROOT}"])
    # the same data and budget as the signal quickstart
    assert recipe.train.max_steps == signal.train.max_steps and recipe.train.batch_size == signal.train.batch_size
    assert recipe.train.encoder_stage == signal.train.encoder_stage and recipe.eval == signal.eval
    assert recipe.data.model_dump(exclude={"path"}) == signal.data.model_dump(exclude={"path"})


# ------------------------------------------------------------------------------------------------
# a rendered cache (`meit render` output) instead of drawing on the fly


def _dataset(prepared, contract, **kwargs):
    from meit.data.dataset import report_dataset
    from meit.data.prompts import PromptFormat
    from meit.models.backbones import resolve_backbone
    from meit.models.loading import load_tokenizer, source_folder

    tokenizer = load_tokenizer(source_folder(resolve_backbone("tiny-gpt2")), False)
    fmt = PromptFormat(template="plain", num_ecg_tokens=1, placement="start", placeholder_id=3, max_length=96)
    return report_dataset(prepared, "validation", tokenizer=tokenizer, prompt_format=fmt, contract=contract,
                          max_samples=3, **kwargs)


@pytest.mark.parametrize("mode", ["paper-3x4", "gaf"])
def test_rendered_cache_gives_the_same_images_as_drawing(prepared_100hz, tmp_path, mode):
    from meit.render_jobs.one import RenderSettings
    from meit.render_jobs.split import render_split

    contract = checked_contract({**PAPER, "image_mode": mode, "image_size": [64, 96] if mode != "gaf" else 32},
                                "model.")
    settings = (RenderSettings(mode="paper", layout="3x4", dpi=contract.image_dpi) if mode != "gaf"
                else RenderSettings(mode="gaf", size=32))
    render_split(prepared_100hz, "validation", tmp_path / "cache" / "validation", settings, limit=3, progress=False)
    drawn = _dataset(prepared_100hz, contract)
    cached = _dataset(prepared_100hz, contract, image_cache=tmp_path / "cache")  # a folder of splits
    assert cached.transform.cache is not None
    for i in range(3):
        torch.testing.assert_close(cached[i]["ecg"], drawn[i]["ecg"], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_cache_that_does_not_match_the_contract_is_a_typed_error(prepared_100hz, tmp_path):
    from meit.errors import DataError
    from meit.render import Augmentation
    from meit.render_jobs.one import RenderSettings
    from meit.render_jobs.split import render_split

    contract = checked_contract(PAPER, "model.")
    render_split(prepared_100hz, "validation", tmp_path / "dpi", RenderSettings(dpi=contract.image_dpi + 10),
                 limit=2, progress=False)
    with pytest.raises(DataError, match=rf"dpi {contract.image_dpi + 10} \(the contract needs {contract.image_dpi}\)"):
        _dataset(prepared_100hz, contract, image_cache=tmp_path / "dpi")
    render_split(prepared_100hz, "validation", tmp_path / "aug", RenderSettings(
        dpi=contract.image_dpi, augmentation=Augmentation(blur=0.5)), limit=2, progress=False)
    with pytest.raises(DataError, match="the pages are augmented"):
        _dataset(prepared_100hz, contract, image_cache=tmp_path / "aug")
    with pytest.raises(DataError, match="holds split 'validation', not 'test'"):
        from meit.data.rendered_cache import RenderedCache

        RenderedCache.open(tmp_path / "aug", "test")
    with pytest.raises(DataError, match=r"no .*index.json"):
        _dataset(prepared_100hz, contract, image_cache=tmp_path / "nothing")
    # a record the cache lacks (rendered with --limit 2) is named
    render_split(prepared_100hz, "validation", tmp_path / "two", RenderSettings(dpi=contract.image_dpi), limit=2,
                 progress=False)
    dataset = _dataset(prepared_100hz, contract, image_cache=tmp_path / "two")
    dataset[1]
    with pytest.raises(DataError, match=r"is not in data.image_cache"):
        dataset[2]
    # a perturbed signal (a control) is drawn from the signal, never swapped for the cached clean page
    shuffled = _dataset(prepared_100hz, contract, image_cache=tmp_path / "two",
                        perturb=lambda signal, fs, record_id: np.zeros_like(signal))
    assert not torch.equal(shuffled[0]["ecg"], dataset[0]["ecg"])
