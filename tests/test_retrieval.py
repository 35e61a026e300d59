"""Retrieval index (build, load, query, evaluate) and the `meit retrieve` / `meit zeroshot` commands.

One small untrained ECG–text model serves the whole module: the checks are about plumbing and
bookkeeping (what is stored, what is excluded, what counts as a hit), not about a trained space;
recall itself is checked on handcrafted embeddings whose right answers are known.
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from meit.cli import main
from meit.errors import DataError, ModelError
from meit.pretrain.data import prepared_split
from meit.retrieval.index import RetrievalIndex
from meit.retrieval.index_build import build_index
from meit.retrieval.index_files import EMBEDDINGS, META, RECORDS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from meit.models.encoders import EncoderContract, build_encoder
    from meit.models.text import load_text_encoder
    from meit.pretrain.model import EcgTextModel

    torch.manual_seed(0)
    encoder = build_encoder("resnet1d-tiny", EncoderContract(fs=100, seconds=10))
    text_model, tokenizer = load_text_encoder("minilm")
    model = EcgTextModel(encoder, "resnet1d-tiny", text_model, tokenizer, embed_dim=32)
    return model.save_pretrained(tmp_path_factory.mktemp("ecgtext") / "final")


@pytest.fixture(scope="module")
def model(model_dir):
    from meit.pretrain.model import EcgTextModel

    return EcgTextModel.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def index_dir(model, model_dir, prepared_100hz, tmp_path_factory) -> Path:
    dataset = prepared_split(model.contract, prepared_100hz, "train")
    return build_index(model, dataset, tmp_path_factory.mktemp("index") / "train", model_dir=model_dir,
                       data_path=prepared_100hz, split="train", batch_size=16, progress=False)


@pytest.fixture(scope="module")
def other_model_dir(model_dir, tmp_path_factory) -> Path:
    """The same folder with the encoder weights nudged: what a retrained model looks like to the index."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    other = tmp_path_factory.mktemp("other") / "final"
    shutil.copytree(model_dir, other)
    weights = other / "encoder.safetensors"
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
    state = load_file(str(weights))
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + 0.01
    save_file(state, str(weights), metadata=metadata)
    return other


def _record_path(raw: Path, row_id: str) -> Path:
    """The 100 Hz wfdb record of a row, from the raw ptbxl_database.csv (``filename_lr``, relative to the root)."""
    with open(raw / "ptbxl_database.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if int(float(row["ecg_id"])) == int(row_id):
                return raw / row["filename_lr"]
    raise AssertionError(f"ecg_id {row_id} not in the raw table")


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------------------------------------
# build / load


def test_index_round_trip(model, index_dir, prepared_100hz):
    from meit.retrieval.evaluate import embed_dataset

    index = RetrievalIndex.load(index_dir)
    dataset = prepared_split(model.contract, prepared_100hz, "train")
    assert index.ids == dataset.ids()
    assert index.reports == dataset.reports()
    torch.testing.assert_close(index.ecg, embed_dataset(model, dataset, batch_size=32), atol=1e-5, rtol=0)
    assert index.report.shape == (len(set(index.reports)), 32)
    torch.testing.assert_close(index.report, model.embed_texts(index.distinct), atol=1e-5, rtol=0)
    assert [index.distinct[i] for i in index.report_index] == index.reports
    meta = json.loads((index_dir / META).read_text())
    assert meta["rows"] == len(dataset) and meta["split"] == "train" and meta["embed_dim"] == 32
    assert meta["contract"] == {"leads": 12, "fs": 100, "seconds": 10.0, "normalisation": "zscore",
                                "bandpass": None, "bandpass_order": 2, "notch_hz": None, "baseline": "none"}
    assert set(meta["model_sha256"]) == {"encoder.safetensors", "heads.safetensors"}
    first = json.loads((index_dir / RECORDS).read_text().splitlines()[0])
    assert set(first) == {"id", "report", "report_index", "findings"}
    assert not list(index_dir.parent.glob(".tmp-*"))  # written atomically, nothing left behind


def test_query_by_id_sorted_and_excludes_itself(index_dir, capsys):
    index = RetrievalIndex.load(index_dir)
    row_id = index.ids[3]
    own = index.embedding_of(row_id)
    hits = index.query_ecg(own, k=5, to="ecg", exclude_id=row_id)
    assert len(hits) == 5 and [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert row_id not in [h.id for h in hits]
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    # without exclusion the case finds itself first, at cosine 1
    assert index.query_ecg(own, k=1, to="ecg")[0].id == row_id
    reports = index.query_ecg(own, k=4, to="report")
    assert len(reports) == 4 and all(a.score >= b.score for a, b in itertools.pairwise(reports))
    assert all(h.rows == index.reports.count(h.report) for h in reports)

    assert main(["retrieve", "query", str(index_dir), "--id", row_id, "--k", "3", "--json"]) == 0
    out = _json_out(capsys)
    assert out["query"]["id"] == row_id
    assert len(out["ecg"]) == 3 and row_id not in [h["id"] for h in out["ecg"]]
    assert [h["id"] for h in out["ecg"]] == [h.id for h in hits[:3]]
    assert len(out["report"]) == 3

    assert main(["retrieve", "query", str(index_dir), "--id", row_id, "--k", "2", "--to", "ecg"]) == 0
    text = capsys.readouterr().out
    assert f"{row_id} itself excluded" in text and "nearest distinct reports" not in text

    assert main(["retrieve", "query", str(index_dir), "--id", "no-such-row", "--json"]) == 3


def test_query_by_record_matches_row_query(index_dir, synthetic_raw, prepared_100hz, capsys):
    from meit.data.dataset import load_prepared
    from meit.records import read_ecg_file

    index = RetrievalIndex.load(index_dir)
    row_id = index.ids[5]
    record = _record_path(synthetic_raw, row_id)
    # what is actually equal: prep and read_ecg_file share one reader, so the 100 Hz signals match exactly
    split = load_prepared(prepared_100hz)["train"]
    stored = np.asarray(split[index.position[row_id]]["ecg"], dtype=np.float32)
    signal, fs = read_ecg_file(record)
    assert fs == 100 and np.array_equal(signal, stored)

    assert main(["retrieve", "query", str(index_dir), "--record", str(record), "--k", "4", "--json"]) == 0
    by_record = _json_out(capsys)
    assert main(["retrieve", "query", str(index_dir), "--id", row_id, "--k", "3", "--json"]) == 0
    by_id = _json_out(capsys)
    # same transform, same model: same scores up to float noise (single ECG vs batched embedding)
    assert [h["report"] for h in by_record["report"][:3]] == [h["report"] for h in by_id["report"]]
    np.testing.assert_allclose([h["score"] for h in by_record["report"][:3]], [h["score"] for h in by_id["report"]],
                               atol=1e-5)
    # a record does not know its id: it finds its own row first, then the row query's neighbours
    assert by_record["ecg"][0]["id"] == row_id and by_record["ecg"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert [h["id"] for h in by_record["ecg"][1:]] == [h["id"] for h in by_id["ecg"]]
    np.testing.assert_allclose([h["score"] for h in by_record["ecg"][1:]], [h["score"] for h in by_id["ecg"]],
                               atol=1e-5)


# ------------------------------------------------------------------------------------------------
# evaluate on handcrafted embeddings: the right answers are known


_INDEXED = [  # id, report: a/b share a wording, c/d share findings ({afib}) with different wordings
    ("a", "Sinus rhythm. Normal ECG."),
    ("b", "Sinus rhythm. Normal ECG."),
    ("c", "Atrial fibrillation."),
    ("d", "Irregular rhythm: atrial fibrillation."),
    ("e", "Left bundle branch block."),
    ("f", "Right bundle branch block."),
]


def _handcrafted_index(tmp_path: Path) -> RetrievalIndex:
    """Distinct report j → basis vector e_j; each indexed ECG sits exactly on its report's vector."""
    distinct = list(dict.fromkeys(r for _, r in _INDEXED))
    basis = torch.eye(8)
    from meit.evaluation.clinical import extract_findings

    records = [{"id": i, "report": r, "report_index": distinct.index(r), "findings": sorted(extract_findings(r))}
               for i, r in _INDEXED]
    ecg = torch.stack([basis[distinct.index(r)] for _, r in _INDEXED])
    meta = {"embed_dim": 8, "rows": len(records), "split": "train"}
    return RetrievalIndex(tmp_path, meta, ecg, basis[: len(distinct)], records)


def test_evaluate_handcrafted_perfect_and_shuffled(tmp_path):
    index = _handcrafted_index(tmp_path)
    e = torch.eye(8)
    queries = [  # another split: new ids; q5's wording is not in the index but its findings are (a, b)
        ("q1", "Sinus rhythm. Normal ECG.", e[0]),
        ("q2", "Atrial fibrillation.", e[1]),
        ("q3", "Left bundle branch block.", e[3]),
        ("q4", "Right bundle branch block.", e[4]),
        ("q5", "Normal sinus rhythm. Normal ECG.", e[0]),
    ]
    ids, reports = [q[0] for q in queries], [q[1] for q in queries]
    emb = torch.stack([q[2] for q in queries])
    perfect = index.evaluate_embeddings(emb, ids, reports, ks=[1, 2])
    to_report, to_ecg = perfect["ecg_to_report"], perfect["ecg_to_ecg"]
    assert to_report["queries_scored"] == 4  # q5's exact wording is absent: it cannot hit, so it is not counted
    assert to_report["recall@1"] == 1.0 and to_report["chance@1"] == pytest.approx(1 / 5)
    assert to_ecg["queries_scored"] == 5 and to_ecg["self_excluded"] == 0
    assert to_ecg["recall@1"] == 1.0
    # relevant cases per query: q1 {a,b}, q2 {c,d}, q3 {e}, q4 {f}, q5 {a,b} among 6 candidates
    assert to_ecg["chance@1"] == pytest.approx((2 + 2 + 1 + 1 + 2) / 6 / 5)

    shifted = emb.roll(-1, dims=0)  # query i gets query i+1's embedding
    shuffled = index.evaluate_embeddings(shifted, ids, reports, ks=[1, 2])
    assert shuffled["ecg_to_report"]["recall@1"] == 0.0
    assert shuffled["ecg_to_ecg"]["recall@1"] < 1.0
    assert shuffled["ecg_to_report"]["chance@1"] == to_report["chance@1"]  # chance does not depend on scores


def test_evaluate_same_split_excludes_self_matches(tmp_path):
    index = _handcrafted_index(tmp_path)
    e = torch.eye(8)
    # c and d (both afib) each lean towards a case with other findings, so neither finds the other first
    index.ecg[2] = torch.nn.functional.normalize(e[1] + 0.5 * e[3], dim=0)
    index.ecg[3] = torch.nn.functional.normalize(e[2] + 0.5 * e[4], dim=0)
    ids, reports = [i for i, _ in _INDEXED], [r for _, r in _INDEXED]
    result = index.evaluate_embeddings(index.ecg.clone(), ids, reports, ks=[1, 5])
    to_ecg = result["ecg_to_ecg"]
    assert to_ecg["self_excluded"] == 6
    # e and f state findings nobody else states: nothing to find once they are out of their own results
    assert to_ecg["queries_scored"] == 4
    # a finds b and b finds a (identical vectors); c ranks e first, d ranks f first: 2 of 4.
    # Without the exclusion every query would find itself first and recall@1 would be 1.0.
    assert to_ecg["recall@1"] == 0.5
    assert to_ecg["recall@5"] == 1.0  # five candidates left: everything is in the top 5
    # chance counts the 5 other cases, one relevant each
    assert to_ecg["chance@1"] == pytest.approx(1 / 5) and to_ecg["chance@5"] == pytest.approx(1.0)
    # ECG→report is not affected by self-exclusion: the own wording is a legitimate answer
    assert result["ecg_to_report"]["recall@1"] == 1.0
    # what the exclusion prevents: every case finding itself (queries from another dataset with colliding ids)
    inflated = index.evaluate_embeddings(index.ecg.clone(), ids, reports, ks=[1], exclude_self=False)["ecg_to_ecg"]
    assert inflated["self_excluded"] == 0 and inflated["queries_scored"] == 6 and inflated["recall@1"] == 1.0


def test_evaluate_with_model_on_splits(model, index_dir, prepared_100hz):
    index = RetrievalIndex.load(index_dir)
    validation = prepared_split(model.contract, prepared_100hz, "validation")
    result = index.evaluate(model, validation, ks=[1, 5])
    assert result["queries"] == len(validation) and result["ecg_to_ecg"]["self_excluded"] == 0
    train = prepared_split(model.contract, prepared_100hz, "train", max_samples=12)
    same = index.evaluate(model, train, ks=[1, 5])
    assert same["ecg_to_ecg"]["self_excluded"] == 12
    assert same["ecg_to_report"]["queries_scored"] == 12 and same["ecg_to_report"]["candidates"] == len(
        index.distinct)


# ------------------------------------------------------------------------------------------------
# refusals and broken files


def test_refuses_index_of_another_model(index_dir, other_model_dir, synthetic_raw, capsys):
    index = RetrievalIndex.load(index_dir)
    with pytest.raises(ModelError, match=r"encoder\.safetensors"):
        index.check_model(other_model_dir)
    with pytest.raises(ModelError, match="not the model that built the index"):
        index.load_model(other_model_dir)
    record = _record_path(synthetic_raw, index.ids[0])
    code = main(["retrieve", "query", str(index_dir), "--record", str(record), "--model", str(other_model_dir)])
    assert code == ModelError.exit_code
    assert "not the model that built the index" in capsys.readouterr().err


def test_index_contract_is_compared_as_a_contract(model, index_dir, tmp_path):
    """An index written before the contract had filtering fields still matches; another contract does not."""
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    meta = json.loads((copy / META).read_text())
    meta["contract"] = {k: meta["contract"][k] for k in ("leads", "fs", "seconds", "normalisation")}
    (copy / META).write_text(json.dumps(meta))
    RetrievalIndex.load(copy).check_compatible(model)
    meta["contract"]["normalisation"] = "zscore_record"
    (copy / META).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="built by another model"):
        RetrievalIndex.load(copy).check_compatible(model)


@pytest.mark.parametrize("damage, named", [
    (lambda d: (d / RECORDS).unlink(), RECORDS),
    (lambda d: (d / EMBEDDINGS).unlink(), EMBEDDINGS),
    (lambda d: (d / META).unlink(), META),
    (lambda d: (d / EMBEDDINGS).write_bytes(b"\x00garbage"), EMBEDDINGS),
    (lambda d: (d / META).write_text("{not json"), META),
    (lambda d: (d / RECORDS).write_text((d / RECORDS).read_text().split("\n", 1)[1]), RECORDS),
    (lambda d: (d / RECORDS).write_text("[1, 2]\n"), RECORDS),
])
def test_broken_index_files_are_named(index_dir, tmp_path, damage, named):
    broken = tmp_path / "index"
    shutil.copytree(index_dir, broken)
    damage(broken)
    with pytest.raises(DataError, match=named.replace(".", r"\.")):
        RetrievalIndex.load(broken)


def test_missing_index_folder(tmp_path, capsys):
    assert main(["retrieve", "query", str(tmp_path / "nope"), "--id", "1"]) == DataError.exit_code
    assert "retrieval index not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# CLI: build and eval


def test_cli_build_then_eval(model_dir, prepared_100hz, tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["retrieve", "build", str(model_dir), str(prepared_100hz), "--split", "train", "--out", str(out),
                 "--max-samples", "20", "--no-progress"]) == 0
    assert "indexed 20 ECGs" in capsys.readouterr().out
    metrics_file = tmp_path / "m" / "metrics.json"
    assert main(["retrieve", "eval", str(out), "--queries", str(prepared_100hz), "--split", "train",
                 "--ks", "1", "5", "--out", str(metrics_file), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "recall@k" in text and "chance@k" in text
    metrics = json.loads(metrics_file.read_text())
    assert metrics["query_split"] == "train" and metrics["index_split"] == "train"
    assert metrics["ecg_to_ecg"]["self_excluded"] == 20  # the 20 indexed rows are among the 64 queries
    assert set(metrics["ecg_to_report"]) >= {"recall@1", "chance@1", "recall@5", "chance@5", "queries_scored"}


# ------------------------------------------------------------------------------------------------
# zeroshot


def test_zeroshot_cli_lists_every_finding(model_dir, prepared_100hz, tmp_path, capsys):
    from meit.retrieval.zeroshot import load_prompt_sets

    out = tmp_path / "zs"
    assert main(["zeroshot", str(model_dir), str(prepared_100hz), "--split", "train", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "zeroshot.json").read_text())
    expected = [ps.finding for ps in load_prompt_sets()]
    assert list(result["findings"]) == expected
    for finding, entry in result["findings"].items():
        assert entry["positives"] + entry["negatives"] == result["n"] == 64
        assert finding in printed
        if entry["auroc"] is None:  # too few positives: listed with counts and a reason, never dropped
            assert "too few" in entry["skipped"]
        else:
            assert 0.0 <= entry["auroc"] <= 1.0
    assert any(e["auroc"] is None for e in result["findings"].values()) and "–" in printed
    assert (out / "zeroshot_auroc.png").stat().st_size > 1000


def test_zeroshot_unknown_finding_is_config_error(model_dir, prepared_100hz, tmp_path, capsys):
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("not_a_finding:\n  positive: [a]\n  negative: [b]\n")
    assert main(["zeroshot", str(model_dir), str(prepared_100hz), "--prompts", str(prompts)]) == 2
    assert "unknown finding 'not_a_finding'" in capsys.readouterr().err
