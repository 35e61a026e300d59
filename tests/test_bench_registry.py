"""One entry point for every benchmark: ``python -m meit.bench NAME`` and ``meit bench NAME`` (plus the suite forms)."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys

import pytest

from meit.bench import registry
from meit.bench.registry import BENCHMARKS
from meit.cli import main as cli

EXPECTED = {"synth", "prep", "loader", "train-step", "scaling", "generation", "metrics", "ptbxl-text", "encoder-init",
            "grounding", "suite", "faults", "verify", "render", "serve", "classify"}


def _module(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "meit.bench", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def test_list_names_every_registered_benchmark(capsys):
    assert set(BENCHMARKS) == EXPECTED
    for argv in ([], ["--list"]):
        assert registry.main(argv) == 0
        out = capsys.readouterr().out
        for bench in BENCHMARKS.values():
            assert f"  {bench.name} " in out and bench.description in out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_name_resolves_to_a_main_whose_help_names_the_entry_point(name, capsys):
    entry = BENCHMARKS[name].load()
    assert callable(entry) and list(inspect.signature(entry).parameters) == ["argv"]
    with pytest.raises(SystemExit) as stop:
        entry(["--help"])
    assert stop.value.code == 0
    assert f"python -m meit.bench {name}" in capsys.readouterr().out


def test_no_benchmark_module_keeps_its_own_main_block():
    for bench in BENCHMARKS.values():
        assert '__name__ == "__main__"' not in inspect.getsource(importlib.import_module(bench.module)), bench.module


def test_unknown_name_fails_naming_the_known_ones(capsys):
    assert registry.main(["nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err and all(name in err for name in EXPECTED)


def test_module_entry_point_lists_runs_and_rejects():
    listed = _module("--list")
    assert listed.returncode == 0 and all(f"  {name} " in listed.stdout for name in EXPECTED)
    bad = _module("nope")
    assert bad.returncode == 2 and "unknown benchmark 'nope'" in bad.stderr and "train-step" in bad.stderr
    ran = _module("synth", "--n", "3", "--fs", "100")
    assert ran.returncode == 0, ran.stderr
    assert "meit synth benchmark: 3 records" in ran.stdout and "records/s" in ran.stdout


def test_meit_bench_lists_and_runs_named_benchmarks(capsys):
    assert cli(["bench"]) == 0 and cli(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in EXPECTED)
    assert cli(["bench", "synth", "--n", "3", "--fs", "100"]) == 0
    assert "meit synth benchmark: 3 records" in capsys.readouterr().out
    assert cli(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope' is neither a benchmark" in err and "grounding" in err
    assert cli(["bench", "--mode", "emit", "synth"]) == 2  # suite options belong to a suite
    assert "after its name" in capsys.readouterr().err


def _suite_file(tmp_path):
    file = tmp_path / "suite.yaml"
    file.write_text(f"""
name: demo
base_recipe: recipes/quickstart.yaml
output_dir: {tmp_path / 'out'}
data_path: {tmp_path / 'data'}
backbones:
  - name: tiny-gpt2
  - name: tiny-llama
""")
    return file


def test_suite_forms_agree(tmp_path, capsys):
    suite = str(_suite_file(tmp_path))
    jobs = [str(tmp_path / "out" / "jobs" / "tiny-llama.sh")]
    for argv in (["bench", suite, "--mode", "emit", "--only", "tiny-llama"],  # the original form
                 ["bench", "--mode", "emit", suite, "--only", "tiny-llama"],  # options before the YAML, as before
                 ["bench", "suite", suite, "--mode", "emit", "--only", "tiny-llama"]):
        assert cli(argv) == 0, argv
        assert capsys.readouterr().out.split() == jobs, argv
    assert registry.main(["suite", suite, "--mode", "emit", "--only", "tiny-llama"]) == 0
    assert capsys.readouterr().out.split() == jobs
    assert cli(["bench", suite, "--only", "missing"]) == 2
    assert "--only names backbones not in the suite" in capsys.readouterr().err
    assert registry.main(["suite", suite, "--only", "missing"]) == 2  # a ConfigError: one line, its exit code
    assert "python -m meit.bench suite: error: --only names backbones" in capsys.readouterr().err
