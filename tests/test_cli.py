"""The `meit` command: every subcommand has --help, errors map to exit codes."""

import subprocess
import sys

import pytest

from meit.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", COMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: meit" in out and "not yet available" not in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2


def test_bad_recipe_key_exits_2_with_suggestion(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  max_step: 3\n")
    assert main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "train.max_step" in err and "train.max_steps" in err


def test_print_recipe_applies_overrides(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 3\n")
    assert main(["train", str(recipe), "model.fusion=prefix", "--print-recipe"]) == 0
    out = capsys.readouterr().out
    assert "fusion: prefix" in out and "seed: 3" in out


def test_missing_dataset_is_a_data_error(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data:\n  path: {tmp_path / 'nowhere'}\nmodel:\n  llm: tiny-llama\n  encoder: resnet1d-18\n"
                      f"output_dir: {tmp_path / 'out'}\ntrain:\n  max_steps: 1\n  trackers: []\n")
    assert main(["train", str(recipe)]) == 3
    assert "prepared dataset not found" in capsys.readouterr().err


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "meit", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("meit ")
