"""`meit serve`'s HTTP API through the ASGI test client, on a tiny trained-artifact folder.

Good uploads of each kind (and that they agree with each other and with `meit generate`), bad ones (each
a 4xx naming its field), auth on/off, micro-batching (batched greedy rows equal single rows), the model
card endpoint, similar cases from a retrieval index, and that uploads live only in a temporary folder.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from meit.errors import ConfigError
from meit.inference.generation import DecodingSettings, generate_for_signal
from meit.leads import CANONICAL_LEADS
from meit.records import read_ecg
from meit.serve import build_app, build_settings, is_loopback
from meit.serve.engine import Row
from meit.serve.examples import EXAMPLES_DIR

from .test_models_fusion import make_model

NEW_TOKENS = 8
RECORD = EXAMPLES_DIR / "00293_lr"
OTHER = EXAMPLES_DIR / "00017_lr"
REAL = Path(__file__).resolve().parent / "data" / "ptbxl_real" / "records100" / "00000"
TOKEN = "s3cret-token-0123456789"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return make_model("tiny-llama", "kv").save_pretrained(tmp_path_factory.mktemp("serve") / "final")


def _app(artifact: Path, **values):
    values.setdefault("decoding", {"max_new_tokens": NEW_TOKENS})
    return build_app(artifact, build_settings(**values))


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def client(artifact, uploads):
    with TestClient(_app(artifact, upload_dir=uploads, batching={"window_ms": 0})) as c:
        yield c


def _signal(record: Path = RECORD) -> tuple[np.ndarray, int]:
    signal, fs, _ = read_ecg(record)
    return signal, fs


def _json_body(record: Path = RECORD, **extra) -> dict:
    signal, fs = _signal(record)
    return {"fs": fs, "leads": list(CANONICAL_LEADS), "signal": signal.astype(float).tolist(), **extra}


def _wfdb_files(record: Path = RECORD, dat: bytes | None = None) -> dict:
    return {"hea": (f"{record.name}.hea", Path(f"{record}.hea").read_bytes()),
            "dat": (f"{record.name}.dat", Path(f"{record}.dat").read_bytes() if dat is None else dat)}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _error(response, status: int, field: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert error["message"] and error["expected"], error
    return error


# ---------------------------------------------------------------------------------------------- good uploads


def test_json_report_is_what_meit_generate_writes(client):
    response = client.post("/v1/report", json=_json_body())
    assert response.status_code == 200, response.text
    out = response.json()
    model = client.app.state.serve.engine.model
    signal, fs = _signal()
    expected = generate_for_signal(model, signal, fs, settings=DecodingSettings(max_new_tokens=NEW_TOKENS))
    assert out["report"] == expected
    from meit.findings import extract_findings

    assert out["findings"] == sorted(extract_findings(expected))
    assert out["decoding"]["max_new_tokens"] == NEW_TOKENS and out["decoding"]["num_beams"] == 1
    assert out["input"] == {"kind": "json", "fs": 100, "seconds": 10.0, "repairs": []}
    assert set(out["timing"]) >= {"queue_ms", "preprocess_ms", "generate_ms", "total_ms", "batch_rows"}
    assert out["timing"]["generate_ms"] > 0 and out["timing"]["batch_rows"] == 1
    assert "statements" in out["verification"] and "summary" in out["verification"]
    assert out["answer"] is None and "similar" not in out


def test_the_three_input_kinds_agree(client):
    """The same record as wfdb files, an .npy array (T × 12) and JSON with shuffled, aliased lead names."""
    signal, fs = _signal(OTHER)
    wfdb = client.post("/v1/report", files=_wfdb_files(OTHER))
    npy = client.post("/v1/report", files={"npy": ("x.npy", _npy(signal.T.astype(np.float64)))}, data={"fs": str(fs)})
    order = [11, 3, 0, 5, 1, 2, 4, 6, 7, 8, 9, 10]
    names = [CANONICAL_LEADS[i].upper() if i in (3, 4, 5) else f" {CANONICAL_LEADS[i]} " for i in order]
    body = {"fs": fs, "leads": names, "signal": [signal[i].astype(float).tolist() for i in order]}
    as_json = client.post("/v1/report", json=body)
    reports = {kind: r.json()["report"] for kind, r in (("wfdb", wfdb), ("npy", npy), ("json", as_json))
               if r.status_code == 200}
    assert len(reports) == 3, [wfdb.text, npy.text, as_json.text]
    assert len(set(reports.values())) == 1, reports
    assert wfdb.json()["input"]["kind"] == "wfdb" and npy.json()["input"]["kind"] == "npy"


def test_question_is_answered_with_the_question_as_instruction(client):
    question = "Is there atrial fibrillation?"
    out = client.post("/v1/report", json=_json_body(question=question)).json()
    model = client.app.state.serve.engine.model
    signal, fs = _signal()
    settings = DecodingSettings(max_new_tokens=NEW_TOKENS)
    assert out["answer"] == {"question": question,
                             "text": generate_for_signal(model, signal, fs, instruction=question, settings=settings)}
    assert out["report"] == generate_for_signal(model, signal, fs, settings=settings)
    assert out["timing"]["batch_rows"] == 2  # the report and the answer share one batch
    form = client.post("/v1/report", files=_wfdb_files(), data={"question": question}).json()
    assert form["answer"] == out["answer"]


def test_ecg_endpoint_returns_the_read_signal(client):
    out = client.post("/v1/ecg", files=_wfdb_files()).json()
    signal, fs = _signal()
    assert out["fs"] == fs and out["leads"] == list(CANONICAL_LEADS) and out["kind"] == "wfdb"
    assert np.allclose(np.asarray(out["signal"]), signal, atol=1e-4)


def test_health_model_and_examples(client, artifact):
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["auth"] is False and health["retrieval"] is False
    assert health["limits"]["max_seconds"] == 60.0 and health["contract"]["fs"] == 50
    model = client.get("/v1/model").json()
    assert model["source"] == "meit_model.json"  # no card in this artifact: its metadata answers
    assert model["model_card"]["backbone"]["name"] == "tiny-llama"
    assert model["model_card"]["fusion"]["mode"] == "kv"
    assert "not a medical device" in model["model_card"]["intended_use"]
    names = [e["name"] for e in client.get("/v1/examples").json()["examples"]]
    assert names == ["00293_lr", "00017_lr"]
    example = client.get("/v1/examples/00017_lr").json()
    assert example["fs"] == 100 and len(example["signal"]) == 12 and "vorhofflimmern" in example["reference"]
    _error(client.get("/v1/examples/nope"), 404, "name")
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_model_card_is_returned_when_the_artifact_has_one(artifact, tmp_path):
    copy = tmp_path / "final"
    shutil.copytree(artifact, copy)
    card = {"schema": 1, "backbone": {"name": "tiny-llama", "licence": "test"}, "intended_use": "research only"}
    (copy / "model_card.json").write_text(json.dumps(card))
    with TestClient(_app(copy)) as c:
        assert c.get("/v1/model").json()["model_card"] == card
        (copy / "model_card.json").write_text("{broken")  # a damaged card never breaks the endpoint
        out = c.get("/v1/model")
        assert out.status_code == 200 and out.json()["source"] == "meit_model.json"


# ---------------------------------------------------------------------------------------------- bad uploads


def _with(body: dict, **changes) -> dict:
    return {**body, **changes}


def test_bad_json_bodies_name_their_field(client):
    body = _json_body()
    _error(client.post("/v1/report", json=_with(body, signal=body["signal"][:11])), 422, "signal")
    ragged = [row[: 500 + i] for i, row in enumerate(body["signal"])]
    assert "different lengths" in _error(client.post("/v1/report", json=_with(body, signal=ragged)), 422,
                                         "signal")["message"]
    nan = [list(row) for row in body["signal"]]
    nan[7][100:110] = [float("nan")] * 10
    error = _error(client.post("/v1/report", content=json.dumps(_with(body, signal=nan)),
                               headers={"Content-Type": "application/json"}), 422, "signal")
    assert "non-finite" in error["message"] and "V2: 10" in error["message"]
    inf = [list(row) for row in body["signal"]]
    inf[0][5] = float("inf")
    _error(client.post("/v1/report", content=json.dumps(_with(body, signal=inf)),
                       headers={"Content-Type": "application/json"}), 422, "signal")
    with_null = [list(row) for row in body["signal"]]
    with_null[2][3] = None
    _error(client.post("/v1/report", json=_with(body, signal=with_null)), 422, "signal")
    words = [list(row) for row in body["signal"]]
    words[4][0] = "0.1 mV"
    _error(client.post("/v1/report", json=_with(body, signal=words)), 422, "signal[4]")
    leads = list(CANONICAL_LEADS)
    leads[3] = "Lead X"
    assert "'Lead X'" in _error(client.post("/v1/report", json=_with(body, leads=leads)), 422, "leads[3]")["message"]
    twice = [*CANONICAL_LEADS[:11], "I"]
    _error(client.post("/v1/report", json=_with(body, leads=twice)), 422, "leads")
    _error(client.post("/v1/report", json=_with(body, fs=20000)), 422, "fs")
    _error(client.post("/v1/report", json=_with(body, fs=99.5)), 422, "fs")
    _error(client.post("/v1/report", json=_with(body, extra=1)), 422, "extra")
    _error(client.post("/v1/report", json={"fs": 100, "leads": list(CANONICAL_LEADS)}), 422, "signal")
    short = [row[:50] for row in body["signal"]]
    assert "too short" in _error(client.post("/v1/report", json=_with(body, signal=short)), 422, "signal")["message"]
    long_rows = [row * 7 for row in body["signal"]]  # 70 s > 60 s
    _error(client.post("/v1/report", json=_with(body, signal=long_rows)), 413, "signal")
    microvolts = [[v * 1000 for v in row] for row in body["signal"]]
    assert "microvolts" in _error(client.post("/v1/report", json=_with(body, signal=microvolts)), 422,
                                  "signal")["message"]
    _error(client.post("/v1/report", content=b"{not json", headers={"Content-Type": "application/json"}), 400, "body")
    _error(client.post("/v1/report", content=b"x", headers={"Content-Type": "text/plain"}), 415, "Content-Type")
    _error(client.post("/v1/report", json=_with(body, question="x" * 600)), 413, "question")


def test_bad_wfdb_uploads_name_their_file(client):
    dat = Path(f"{RECORD}.dat").read_bytes()
    error = _error(client.post("/v1/report", files=_wfdb_files(dat=dat[:5000])), 422, "dat")
    assert "truncated_dat" in error["message"] and "/tmp" not in error["message"]
    _error(client.post("/v1/report", files={"dat": ("r.dat", dat)}), 422, "hea")
    _error(client.post("/v1/report", files={"hea": ("r.hea", Path(f"{RECORD}.hea").read_bytes())}), 422, "dat")
    _error(client.post("/v1/report", files={"hea": ("r.hea", b"00293_lr 12 abc\n"), "dat": ("r.dat", dat)}),
           422, "hea")
    header = Path(f"{RECORD}.hea").read_text().replace("00293_lr.dat", "../../etc/passwd")
    _error(client.post("/v1/report", files={"hea": ("r.hea", header.encode()), "dat": ("r.dat", dat)}), 422, "hea")
    eleven = "\n".join(Path(f"{RECORD}.hea").read_text().splitlines()[:12]).replace(" 12 100", " 11 100", 1)
    error = _error(client.post("/v1/report", files={"hea": ("r.hea", eleven.encode()), "dat": ("r.dat", dat)}),
                   422, "hea")
    assert "wrong_lead_count" in error["message"]
    _error(client.post("/v1/report", files={"other": ("x.bin", b"123")}), 422, "body")


def test_bad_npy_uploads(client):
    signal, _ = _signal()
    good = _npy(signal)
    _error(client.post("/v1/report", files={"npy": ("x.npy", _npy(signal[:10]))}, data={"fs": "100"}), 422, "npy")
    error = _error(client.post("/v1/report", files={"npy": ("x.npy", good[:-400])}, data={"fs": "100"}), 422, "npy")
    assert "truncated" in error["message"]
    _error(client.post("/v1/report", files={"npy": ("x.npy", b"not an array")}, data={"fs": "100"}), 422, "npy")
    _error(client.post("/v1/report", files={"npy": ("x.npy", good)}), 422, "fs")
    _error(client.post("/v1/report", files={"npy": ("x.npy", good)}, data={"fs": "fast"}), 422, "fs")
    nan = signal.copy()
    nan[2, :40] = np.nan
    _error(client.post("/v1/report", files={"npy": ("x.npy", _npy(nan))}, data={"fs": "100"}), 422, "npy")
    pickled = io.BytesIO()  # object arrays would need pickle: refused from the header alone
    np.lib.format.write_array_header_1_0(pickled, {"descr": "|O", "fortran_order": False, "shape": (12, 1000)})
    assert "dtype object" in _error(client.post("/v1/report", files={"npy": ("x.npy", pickled.getvalue())},
                                                data={"fs": "100"}), 422, "npy")["message"]
    # a header that claims far more data than the file holds is refused before anything is allocated
    huge = io.BytesIO()
    np.lib.format.write_array_header_1_0(huge, {"descr": "<f8", "fortran_order": False, "shape": (12, 10**9)})
    assert "truncated" in _error(client.post("/v1/report", files={"npy": ("x.npy", huge.getvalue())},
                                             data={"fs": "100"}), 422, "npy")["message"]


def test_oversized_body_is_refused_before_parsing(artifact):
    with TestClient(_app(artifact, limits={"max_upload_bytes": 4096})) as c:
        error = _error(c.post("/v1/report", files=_wfdb_files()), 413, "body")
        assert "4096" in error["expected"]


def test_repair_gaps_repairs_short_runs_as_prep_would(artifact):
    body = _json_body()
    body["signal"][7][100:105] = [None] * 5
    with TestClient(_app(artifact, limits={"repair_gaps": True})) as c:
        out = c.post("/v1/report", json=body)
        assert out.status_code == 200, out.text
        assert out.json()["input"]["repairs"] == ["interpolated:V2:5 samples"]
        dead = _json_body()  # only lead I left: nothing rebuilds the rest, 11 of 12 leads would be blanked
        dead["signal"][1:] = [[None] * 1000 for _ in range(11)]
        assert _error(c.post("/v1/report", json=dead), 422, "signal")["message"].startswith("too_much_missing")


# ---------------------------------------------------------------------------------------------- auth, binding


def test_token_is_required_on_every_v1_call(artifact):
    with TestClient(_app(artifact, token=TOKEN)) as c:
        for path in ("/v1/health", "/v1/model", "/v1/examples"):
            response = c.get(path)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/report", json=_json_body()).status_code == 401
        assert c.get("/v1/health", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert c.get("/v1/health", headers={"Authorization": TOKEN}).status_code == 401
        ok = c.get("/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["auth"] is True
        assert c.get("/").status_code == 200  # the page holds no data; its API calls carry the token


def test_binding_beyond_loopback_needs_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    with pytest.raises(ConfigError, match="--token"):
        build_settings(host="0.0.0.0")
    assert build_settings(host="0.0.0.0", token=TOKEN).token == TOKEN
    assert build_settings(host="0.0.0.0", insecure_no_token=True).token is None
    with pytest.raises(ConfigError, match="token") as err:
        build_settings(token="short-secret")
    assert "short-secret" not in str(err.value)  # a rejected token is never echoed
    with pytest.raises(ConfigError, match=r"limits\.min_seconds"):
        build_settings(limits={"min_seconds": -1})


# ---------------------------------------------------------------------------------------------- batching


async def _concurrent(app, bodies: list[dict]) -> list[dict]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as c:
        responses = await asyncio.gather(*(c.post("/v1/report", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


def test_batched_reports_equal_single_reports(artifact):
    """Concurrent requests share batches; under greedy decoding each row's text is its text alone."""
    records = [RECORD, OTHER, *sorted(p.with_suffix("") for p in REAL.glob("*_lr.hea"))[:4]]
    bodies = [_json_body(r) for r in records]
    bodies[1]["question"] = "Is there atrial fibrillation?"  # rows of different prompt lengths (left padding)
    app = _app(artifact, batching={"window_ms": 1000, "max_batch": 8})
    batched = asyncio.run(_concurrent(app, bodies))
    assert max(out["timing"]["batch_requests"] for out in batched) > 1
    engine = app.state.serve.engine
    for body, out in zip(bodies, batched, strict=True):
        signal, fs = np.asarray(body["signal"], dtype=np.float32), body["fs"]
        alone = engine.generate([Row(engine.prepare(signal, fs), engine.default_instruction)])[0]
        assert out["report"] == alone
    assert batched[1]["answer"]["text"] == engine.generate(
        [Row(engine.prepare(np.asarray(bodies[1]["signal"], dtype=np.float32), 100), bodies[1]["question"])])[0]
    off = _app(artifact, batching={"enabled": False})
    unbatched = asyncio.run(_concurrent(off, bodies[:3]))
    assert all(out["timing"]["batch_requests"] == 1 for out in unbatched)
    assert [o["report"] for o in unbatched] == [o["report"] for o in batched[:3]]


# ---------------------------------------------------------------------------------------------- temporary files


def test_uploads_live_only_in_a_temporary_folder_removed_after(client, uploads, monkeypatch):
    import meit.serve.inputs as inputs

    seen: list[Path] = []
    real = inputs.read_ecg

    def spy(path, fs=None):
        seen.append(Path(path))
        assert Path(path).parent.parent == uploads  # <upload_dir>/meit-serve-XXXX/<file>
        return real(path, fs)

    monkeypatch.setattr(inputs, "read_ecg", spy)
    assert client.post("/v1/report", files=_wfdb_files()).status_code == 200
    assert client.post("/v1/report", json=_json_body()).status_code == 200
    signal, _ = _signal()
    assert client.post("/v1/report", files={"npy": ("x.npy", _npy(signal))}, data={"fs": "100"}).status_code == 200
    dat = Path(f"{RECORD}.dat").read_bytes()
    assert client.post("/v1/report", files=_wfdb_files(dat=dat[:100])).status_code == 422
    assert len(seen) == 4 and all(p.parent.name.startswith("meit-serve-") for p in seen)
    assert list(uploads.iterdir()) == []  # every request's folder is gone, failed ones included


# ---------------------------------------------------------------------------------------------- similar cases


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    """A small retrieval index of the real test records, built by a tiny ECG–text model."""
    from meit.models.encoders import EncoderContract, build_encoder
    from meit.models.text import load_text_encoder
    from meit.pretrain.model import EcgTextModel
    from meit.retrieval.index_build import embed_signal
    from meit.retrieval.index_files import FORMAT, model_fingerprint, write_index_files

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("similar")
    encoder = build_encoder("resnet1d-tiny", EncoderContract(fs=100, seconds=10))
    text_model, tokenizer = load_text_encoder("minilm")
    model = EcgTextModel(encoder, "resnet1d-tiny", text_model, tokenizer, embed_dim=16)
    model_dir = model.save_pretrained(root / "ecgtext")
    model.eval()
    records = sorted(p.with_suffix("") for p in REAL.glob("*_lr.hea"))[:8]
    ids = [r.name for r in records]
    reports = [f"report of {r.name}" for r in records]
    with torch.no_grad():
        ecg = torch.stack([embed_signal(model, *_signal(r)) for r in records])
        text = model.embed_texts(reports)
    index = root / "index"
    index.mkdir()
    write_index_files(index, ecg, text, ids, reports, list(range(len(ids))), meta={
        "format": FORMAT, "model_dir": str(model_dir), "data_path": str(REAL), "split": "test", "rows": len(ids),
        "embed_dim": 16, "contract": model.contract.to_dict(), "model_sha256": model_fingerprint(model_dir)})
    return index


def test_similar_cases_from_a_retrieval_index(artifact, index_dir):
    with TestClient(build_app(artifact, build_settings(decoding={"max_new_tokens": 4}, similar_k=3),
                              index=index_dir)) as c:
        assert c.get("/v1/health").json()["retrieval"] is True
        assert c.get("/v1/model").json()["serving"]["retrieval"]["rows"] == 8
        record = sorted(p.with_suffix("") for p in REAL.glob("*_lr.hea"))[2]
        out = c.post("/v1/report", files=_wfdb_files(record)).json()
    assert len(out["similar"]) == 3
    assert out["similar"][0]["id"] == record.name  # an indexed ECG finds itself first
    assert out["similar"][0]["report"] == f"report of {record.name}"
    assert out["similar"][0]["score"] >= out["similar"][1]["score"]


def test_cli_refuses_an_exposed_host_without_a_token(artifact, capsys):
    from meit.cli import main

    assert main(["serve", "--checkpoint", str(artifact), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(artifact.parent / "missing"), "--port", "0"]) == 4
    assert "no such folder" in capsys.readouterr().err
