"""A model must write what the ECG shows: a tiny model trained on bradycardia vs tachycardia must tell them apart.

The reports of the two classes differ in one word only, so a model that ignores the signal can at best
write the same (majority) report for every record; the shuffled control must then cost it its accuracy.
This is the small, CPU-fast version of the grounding targets of the quickstart (docs/evaluation.md).
Measured with these settings: the pipeline as it was before (encoder trained jointly from scratch, raw
projector) writes one rhythm for every test ECG (accuracy 0.40); the encoder stage, the normalised
projector or the auxiliary findings loss each bring it to 1.00.
"""

from __future__ import annotations

import json

import pytest

from meit.config import load_recipe
from meit.findings import extract_findings

REPORTS = {"sinus_brady": "Sinus bradycardia. Abnormal ECG.", "sinus_tachy": "Sinus tachycardia. Abnormal ECG."}


@pytest.fixture(scope="module")
def brady_vs_tachy(tmp_path_factory):
    """A prepared 100 Hz dataset whose records are sinus bradycardia or sinus tachycardia, nothing else."""
    from datasets import load_from_disk

    from data_prep.ptbxl import prepare_ptbxl
    from meit.synth import generate_ptbxl_layout
    from meit.synth.findings import OPTIONAL, LabelMix

    root = tmp_path_factory.mktemp("brady_tachy")
    mix = LabelMix(normal=0.0, rhythm={"sinus_brady": 0.5, "sinus_tachy": 0.5}, **{name: 0.0 for name in OPTIONAL})
    generate_ptbxl_layout(root / "raw", n=160, seed=3, fs=100, seconds=10.0, workers=1, label_mix=mix,
                          noise_level=0.3, write_lr=True, progress=False)
    prepare_ptbxl(root / "raw", root / "full", source="records100", report="original", workers=1, seed=0)
    full = load_from_disk(str(root / "full"))
    # one fixed sentence per class: the only thing to learn is which class the signal shows
    simple = full.map(lambda row: {"report": REPORTS[json.loads(row["findings"])[0]
                                                     if isinstance(row["findings"], str) else row["findings"][0]]})
    simple.save_to_disk(str(root / "prepared"))
    (root / "prepared" / "manifest.json").write_text((root / "full" / "manifest.json").read_text())
    return root / "prepared"


def _rhythm(text: str) -> str | None:
    found = extract_findings(text) & {"sinus_brady", "sinus_tachy"}
    return next(iter(found)) if len(found) == 1 else None


@pytest.mark.slow
def test_tiny_model_tells_bradycardia_from_tachycardia_and_the_control_shows_it(tmp_path, brady_vs_tachy):
    from meit.evaluation.runner import evaluate_model
    from meit.models import MeitModel
    from meit.training import train

    recipe = load_recipe(None, [
        f"data.path={brady_vs_tachy}", f"output_dir={tmp_path / 'run'}", "seed=0", "data.fs=100",
        "model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.fusion=kv", "model.projector_norm=true",
        # a random-initialised tiny LLM is fully fine-tuned: LoRA on random weights barely moves the loss
        "model.finding_head=true", "model.lora.enabled=false", "model.max_length=64",
        "train.encoder_stage.max_steps=60", "train.encoder_stage.batch_size=16",
        "train.max_steps=80", "train.batch_size=8", "train.lr=2e-3", "train.lr_projector=3e-3",
        "train.train_encoder=false", "train.warmup_ratio=0.0", "train.trackers=[]", "train.log_every=20",
        "eval.split=test", "eval.max_new_tokens=8", "eval.meteor=false", "eval.batch_size=8",
        "eval.controls=[shuffled]",
    ])
    result = train(recipe, progress=False)
    assert (tmp_path / "run" / "encoder_stage" / "final" / "finding_head.safetensors").is_file()
    model = MeitModel.from_pretrained(result.final_dir)
    metrics = evaluate_model(model, recipe, tmp_path / "eval", progress=False)

    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    truth = [_rhythm(r["reference"]) for r in rows]
    assert set(truth) == {"sinus_brady", "sinus_tachy"}, "the test split must hold both classes"
    said = [_rhythm(r["prediction"]) for r in rows]
    assert len(set(said) - {None}) == 2, f"the model writes one rhythm for every ECG: {said}"
    accuracy = sum(s == t for s, t in zip(said, truth, strict=True)) / len(rows)
    assert accuracy >= 0.8, f"rhythm read from the ECG in {accuracy:.0%} of {len(rows)} test records"
    # another record's ECG must change the report: the shuffled control loses clinical F1
    assert metrics["grounding"]["shuffled"]["clinical_micro_f1_drop"] >= 0.2, metrics["grounding"]
