"""The source registry, the layering of the reader and preparation modules, and the writer's ownership rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from data_prep.sources import PrepSource, get_source, sources
from meit.errors import ConfigError
from meit.publish import OWNER_MARKER
from tests.raw_fixtures import make_ptbxl


def _modules_after(code: str) -> set[str]:
    """Module names a fresh interpreter holds after running ``code`` (this process has imported everything)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _under(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


def test_registry_lists_every_source_in_cli_order():
    registered = sources()
    assert list(registered) == ["ptbxl", "mimic-iv-ecg"]
    assert all(isinstance(s, PrepSource) and s.name == name for name, s in registered.items())
    assert get_source("ptbxl") is registered["ptbxl"]
    with pytest.raises(ConfigError, match="expected ptbxl or mimic-iv-ecg"):
        get_source("nope")


def test_building_the_cli_imports_no_heavy_library():
    loaded = _modules_after("from meit.cli import build_parser\nbuild_parser()")
    assert "data_prep.sources" in loaded
    assert _under(loaded, "numpy", "pandas", "wfdb", "scipy", "datasets", "torch") == set()


def test_leaf_modules_import_only_leaf_modules():
    loaded = _modules_after("import meit.records, meit.ecg_signal")
    assert _under(loaded, "data_prep", "meit.data", "meit.models", "meit.training", "meit.evaluation",
                  "meit.synth", "torch") == set()


def test_data_prep_imports_nothing_above_it():
    loaded = _modules_after("import data_prep.ptbxl, data_prep.mimic_iv_ecg, data_prep.writer\n"
                            "import data_prep.items, data_prep.tables")
    assert _under(loaded, "meit.data", "meit.models", "meit.training", "meit.evaluation", "meit.pretrain",
                  "meit.retrieval", "meit.synth", "meit.cli", "torch") == set()


def test_writer_marks_its_output_and_accepts_a_marked_folder(tmp_path):
    from data_prep.ptbxl import prepare_ptbxl

    raw = make_ptbxl(tmp_path / "raw", 3, fs=100, quirks=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / OWNER_MARKER).write_text("{}\n")  # only a marker: an earlier meit output, not a user's folder
    (out / "train").mkdir()
    (out / "train" / ".state.json.tmp-123").write_text("half")  # a write killed by SIGKILL
    (out / ".manifest.json.tmp-123").write_text("half")
    prepare_ptbxl(raw.root, out, source="records100", progress=False)
    assert json.loads((out / OWNER_MARKER).read_text())["kind"] == "prepared dataset"
    assert not (out / "train" / ".state.json.tmp-123").exists()
    assert not (out / ".manifest.json.tmp-123").exists()
    mixed = tmp_path / "mixed"  # a marker does not make a user's other files ours
    mixed.mkdir()
    (mixed / OWNER_MARKER).write_text("{}\n")
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        prepare_ptbxl(raw.root, mixed, source="records100", progress=False)
