"""The reference ceiling: synthetic reports re-drawn from their ground truth, and what they score."""

from __future__ import annotations

import pytest

from meit.bench.grounding import reference_ceiling
from meit.data.dataset import get_split, load_prepared
from meit.errors import DataError
from meit.findings import extract_findings
from meit.synth.ceiling import has_truth, redrawn_reports, truth_of


@pytest.fixture(scope="module")
def rows(prepared_100hz):
    split = get_split(load_prepared(prepared_100hz), "train")
    return split.select(range(min(len(split), 30))).remove_columns("ecg").to_list()


def test_redrawn_reports_state_the_truth_in_new_words(rows):
    assert has_truth(rows[0])
    first, again, other = redrawn_reports(rows, 1), redrawn_reports(rows, 1), redrawn_reports(rows, 2)
    assert first == again and first != other
    for row, text in zip(rows, first, strict=True):
        rhythm = truth_of(row)["findings"][0]  # the generator's rhythm names are meit.findings names
        assert rhythm in extract_findings(text), (row["id"], text)


def test_ceiling_is_below_one_because_the_generator_words_at_random(rows):
    ceiling = reference_ceiling(rows, draws=5)
    assert ceiling is not None and ceiling["n"] == len(rows) and ceiling["draws"] == 5
    assert 0.5 < ceiling["clinical_micro_f1"] < 1.0 and ceiling["clinical_micro_f1_sd"] >= 0.0
    assert 0.0 < ceiling["clinical_macro_f1"] <= 1.0


def test_real_data_has_no_ceiling_and_truth_of_names_what_is_missing(rows):
    real = [{"id": "r1", "report": "Sinusrhythmus. Normales EKG."}]
    assert reference_ceiling(real) is None
    with pytest.raises(DataError, match=r"r1.*heart_rate"):
        truth_of(real[0])
