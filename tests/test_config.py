"""Recipe loading: validation, overrides, 'did you mean', and the shipped recipes."""

from pathlib import Path

import pytest

from meit.config import VALID_KEYS, closest_key, load_recipe, parse_override
from meit.errors import ConfigError

RECIPES = sorted(Path(__file__).resolve().parents[1].joinpath("recipes").glob("**/*.yaml"))
RECIPE_FILES = [p for p in RECIPES if "accelerate" not in p.parts and "deepspeed" not in p.parts
                and "pretrain" not in p.name]  # pretraining recipes: tests/test_pretrain.py


def _schema_for(path: Path):
    """Classification recipes have their own schema; every other shipped recipe is a training recipe."""
    from meit.classify.config import ClassifyRecipe
    from meit.config import Recipe

    return ClassifyRecipe if path.name.startswith("classify") else Recipe


def test_defaults_follow_meit_hyperparameters():
    recipe = load_recipe(None)
    assert recipe.model.lora.r == 64 and recipe.model.lora.alpha == 128 and recipe.model.lora.dropout == 0.1
    assert recipe.train.lr == 2e-5 and recipe.train.warmup_ratio == 0.03 and recipe.train.scheduler == "linear"


def test_overrides_are_parsed_as_yaml_and_nested():
    recipe = load_recipe(None, ["train.lr=1e-4", "model.lora.r=8", "model.kv_layers=[0, 2]", "train.resume=auto"])
    assert recipe.train.lr == pytest.approx(1e-4)
    assert recipe.model.lora.r == 8
    assert recipe.model.kv_layers == [0, 2]
    assert recipe.train.resume == "auto"
    assert load_recipe(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"  # YAML's `no` is False


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [("trian.lr=1", "train.lr"), ("model.lora.rr=2", "model.lora.r"), ("model.fusoin=kv", "model.fusion")],
)
def test_unknown_key_names_the_closest_valid_key(override, suggestion):
    with pytest.raises(ConfigError) as err:
        load_recipe(None, [override])
    assert override.split("=")[0] in str(err.value)
    assert f"did you mean '{suggestion}'" in str(err.value)


def test_unknown_key_in_yaml_file_is_reported(tmp_path):
    file = tmp_path / "r.yaml"
    file.write_text("train:\n  batchsize: 4\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.batchsize'; did you mean 'train.batch_size'"):
        load_recipe(file)


def test_bad_value_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"model.fusion: .*'prefix' or 'kv'.*got 'cross'"):
        load_recipe(None, ["model.fusion=cross"])
    with pytest.raises(ConfigError, match=r"train.batch_size"):
        load_recipe(None, ["train.batch_size=0"])


def test_kv_fusion_takes_one_slot():
    with pytest.raises(ConfigError, match="num_ecg_tokens must be 1"):
        load_recipe(None, ["model.fusion=kv", "model.num_ecg_tokens=4"])
    assert load_recipe(None, ["model.fusion=prefix", "model.num_ecg_tokens=4"]).model.num_ecg_tokens == 4


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_override("train.lr")
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_recipe(bad)


def test_recipe_vocabulary_of_design_md_exists():
    for key in ["output_dir", "seed", "data.path", "data.fs", "data.seconds", "model.llm", "model.encoder",
                "model.encoder_checkpoint", "model.projector", "model.fusion", "model.lora.r", "model.lora.alpha",
                "train.stage", "train.max_steps", "train.epochs", "train.batch_size", "train.grad_accum",
                "train.lr", "train.save_every", "train.resume"]:
        assert key in VALID_KEYS, key
    assert closest_key("train.ephocs") == "train.epochs"


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    load_recipe(path, schema=_schema_for(path))


def test_classify_recipes_are_not_training_recipes():
    """The schema choice above matters: a classify recipe read as a training recipe is refused by name."""
    classify = next(p for p in RECIPE_FILES if p.name.startswith("classify"))
    with pytest.raises(ConfigError, match="unknown key 'stage1'"):
        load_recipe(classify)


def test_encoder_preprocessing_keys():
    """Record-wide normalisations and declared filtering, in training and pretraining recipes."""
    from meit.pretrain.config import PretrainRecipe

    recipe = load_recipe(None, ["model.normalisation=zscore_record", "model.notch_hz=50", "model.bandpass=[0.67, 40]",
                                "model.bandpass_order=4", "model.baseline=median"])
    m = recipe.model
    assert (m.normalisation, m.notch_hz, m.bandpass, m.bandpass_order, m.baseline) == (
        "zscore_record", 50.0, (0.67, 40.0), 4, "median")
    defaults = load_recipe(None).model
    assert (defaults.notch_hz, defaults.bandpass, defaults.bandpass_order, defaults.baseline) == (None, None, 2, "none")
    assert load_recipe(None, ["model.bandpass=[null, null]"]).model.bandpass is None
    assert load_recipe(None, ["model.bandpass=[0.5, null]"]).model.bandpass == (0.5, None)
    with pytest.raises(ConfigError, match=r"model.normalisation: .*'minmax_record'.*got 'minmax_recrod'"):
        load_recipe(None, ["model.normalisation=minmax_recrod"])
    with pytest.raises(ConfigError, match=r"model.bandpass: .*low < high"):
        load_recipe(None, ["model.bandpass=[40, 0.5]"])
    with pytest.raises(ConfigError, match=r"model.baseline: .*'median'.*got 'wavelet'"):
        load_recipe(None, ["model.baseline=wavelet"])
    with pytest.raises(ConfigError, match=r"did you mean 'model.notch_hz'"):
        load_recipe(None, ["model.notch=50"])
    pre = load_recipe(None, ["ecg.normalisation=minmax_record", "ecg.bandpass=[0.67, 40]", "data.fs=500",
                             "data.seconds=10"], schema=PretrainRecipe)
    assert pre.ecg.normalisation == "minmax_record"
    contract = pre.ecg.contract(pre.data)
    assert (contract.fs, contract.normalisation, contract.bandpass) == (pre.data.fs, "minmax_record", (0.67, 40.0))
    with pytest.raises(ConfigError, match=r"did you mean 'ecg.baseline'"):
        load_recipe(None, ["ecg.baselin=median"], schema=PretrainRecipe)


@pytest.mark.parametrize(("flags", "choice", "expected"), [
    ("fpu avx512f avx512_bf16", "bf16-native", "bf16"),
    ("fpu amx_bf16 amx_tile", "bf16-native", "bf16"),
    ("fpu avx2 avx512f", "bf16-native", "no"),  # bf16 would be emulated: slower than fp32
    ("fpu avx512f avx512_bf16", "auto", "no"),  # auto keeps CPU runs in fp32
    ("fpu avx2", "bf16", "bf16"),  # asked for explicitly
])
def test_bf16_native_follows_the_cpu_flags(tmp_path, monkeypatch, flags, choice, expected):
    from meit.training import setup

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(setup.torch.cuda, "is_available", lambda: False)
    read_flags = setup.cpu_has_native_bf16
    monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda: read_flags(cpuinfo))
    assert setup.resolve_mixed_precision(load_recipe(None, [f"train.mixed_precision={choice}"])) == expected
