"""`meit synth` and the label mix: options, errors, exit codes, finding frequencies."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from meit.cli import main
from meit.errors import ConfigError
from meit.synth import LabelMix
from meit.synth.findings import CATALOGUE, OPTIONAL, RHYTHMS, SCP_STATEMENTS, sample_findings


def test_synth_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "raw"
    assert main(["synth", "--out", str(out), "--n", "6", "--seed", "4", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "wrote 6 records" in text and "records/s" in text
    db = pd.read_csv(out / "ptbxl_database.csv")
    assert len(db) == 6 and (out / "scp_statements.csv").is_file()
    config = json.loads((out / "synth_config.json").read_text())
    assert config["seed"] == 4 and config["n"] == 6


@pytest.mark.parametrize(
    "argv",
    [
        ["--n", "0"],
        ["--fs", "250"],
        ["--seconds", "1"],
        ["--workers", "0"],
        ["--noise", "9"],
        ["--label-mix", "bogus=1"],
        ["--label-mix", "normal=2"],
        ["--label-mix", "{not json"],
        ["--label-mix", "missing.json"],
    ],
)
def test_bad_options_exit_2(tmp_path, argv, capsys):
    assert main(["synth", "--out", str(tmp_path / "x"), "--no-progress", *argv]) == 2
    assert "meit synth: error:" in capsys.readouterr().err


def test_out_is_required(capsys):
    assert main(["synth"]) == 2
    assert "--out" in capsys.readouterr().err


def test_label_mix_option_controls_findings(tmp_path):
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"normal": 0.0, "rhythm": {"afib": 1.0, "sinus_rhythm": 0.0}, "sinus_brady": 0,
                               "sinus_tachy": 0, "lbbb": 1.0}))
    out = tmp_path / "af"
    assert main(["synth", "--out", str(out), "--n", "8", "--label-mix", str(mix), "--no-progress"]) == 0
    db = pd.read_csv(out / "ptbxl_database.csv")
    assert (db["rhythm"] == "afib").all()
    assert db["scp_codes"].str.contains("AFIB").all() and db["scp_codes"].str.contains("CLBBB").all()


def test_bench_prints_throughput(capsys):
    assert main(["synth", "--bench", "--n", "10"]) == 0
    out = capsys.readouterr().out
    assert "records/s" in out and "per core" in out


def test_label_mix_parsing_forms(tmp_path):
    assert LabelMix.parse("normal=0.2, afib=0.5").normal == 0.2
    assert LabelMix.parse("normal=0.2, afib=0.5").rhythm["afib"] == 0.5
    assert LabelMix.parse('{"pvc": 0.3}').pvc == 0.3
    path = tmp_path / "m.json"
    path.write_text('{"lbbb": 0.4}')
    assert LabelMix.parse(str(path)).lbbb == 0.4
    assert LabelMix().as_dict()["rhythm"] == LabelMix().rhythm
    for bad in ("lbbb", "lbbb=x", "afib=-1", "{}", "[1]"):
        if bad == "{}":
            assert LabelMix.parse(bad) == LabelMix()
            continue
        with pytest.raises(ConfigError):
            LabelMix.parse(bad)
    with pytest.raises(ConfigError, match="positive sum"):
        LabelMix.from_mapping({"rhythm": {r: 0.0 for r in RHYTHMS}})


def test_sampled_frequencies_follow_the_mix():
    mix = LabelMix(normal=0.3, pvc=0.2, lbbb=0.1)
    rng = np.random.default_rng(0)
    draws = [sample_findings(rng, mix) for _ in range(6000)]
    normal = sum(d == ("sinus_rhythm",) for d in draws) / len(draws)
    assert normal == pytest.approx(0.3, abs=0.02)
    # abnormal draws that come out empty are redrawn, which lifts each finding by 1 / (1 - P(empty))
    p_empty = 0.55 * np.prod([1 - getattr(mix, name) for name in OPTIONAL])
    counts = Counter(f for d in draws for f in d)
    for name, p in (("pvc", 0.2), ("lbbb", 0.1)):
        assert counts[name] / len(draws) == pytest.approx(0.7 * p / (1 - p_empty), abs=0.025), name
    assert counts["afib"] / len(draws) == pytest.approx(0.7 * 0.15 / (1 - p_empty), abs=0.025)
    assert not any("lbbb" in d and "rbbb" in d for d in draws)
    assert not any("avb1" in d and "afib" in d for d in draws)
    only_normal = LabelMix(normal=0.0, rhythm={"sinus_rhythm": 1.0}, **{name: 0.0 for name in OPTIONAL})
    assert sample_findings(rng, only_normal) == ("sinus_rhythm",)  # nothing abnormal allowed: no endless redraw


def test_catalogue_codes_exist_in_statement_table():
    for finding in CATALOGUE.values():
        assert finding.scp_code in SCP_STATEMENTS
    assert "NORM" in SCP_STATEMENTS
