"""The same weights give the same file bytes in every process (found by ``python -m meit.bench faults``).

safetensors keeps ``__metadata__`` in a hash map seeded per process, so an encoder artifact's two metadata
keys came out in either order and the file's sha256 changed from run to run for identical weights.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from meit.data.contract import EncoderContract
from meit.models.encoders import build_encoder, write_encoder_artifact
from meit.publish import safetensors_bytes, write_safetensors

from .fault_hooks import ROOT

WRITER = """
import sys

import torch

from meit.publish import write_safetensors

write_safetensors(sys.argv[1], {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(3)},
                  {k: f"value of {k}" for k in "zyxwvu"})
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_processes_write_byte_identical_files(tmp_path):
    """Six metadata keys: two unsorted writers would agree by chance once in 720."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / f"p{i}.safetensors")], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    assert _sha(tmp_path / "p0.safetensors") == _sha(tmp_path / "p1.safetensors")


def test_an_encoder_artifact_has_the_same_bytes_every_time(tmp_path):
    """Its two metadata keys: the hash map's order changes between calls even within one process."""
    torch.manual_seed(0)
    contract = EncoderContract(fs=100, seconds=2.0, normalisation="none")
    encoder = build_encoder("resnet1d-tiny", contract, base_width=4)
    shas = set()
    for i in range(12):  # unsorted, all twelve alike has probability 2^-11
        out = write_encoder_artifact(tmp_path / f"a{i}", "resnet1d-tiny", encoder, contract, kwargs={"base_width": 4})
        shas.add(_sha(out / "encoder.safetensors"))
    assert len(shas) == 1
    with safe_open(str(tmp_path / "a0" / "encoder.safetensors"), "pt") as handle:
        assert handle.metadata() == {"encoder": "resnet1d-tiny", "format": "meit-encoder"}


def test_sorted_header_is_a_valid_file_with_the_same_content(tmp_path):
    tensors = {"w": torch.randn(3, 5), "bias": torch.randn(5).to(torch.float16), "idx": torch.arange(7)}
    metadata = {"zeta": "1", "alpha": "2", "ünïcode": "µV", "mid": '"quoted"'}
    data = safetensors_bytes(tensors, metadata)
    size = int.from_bytes(data[:8], "little")
    assert size % 8 == 0 and data[8:8 + size].decode().startswith('{"__metadata__":{"alpha":"2","mid"')
    write_safetensors(tmp_path / "t.safetensors", tensors, metadata)
    loaded = load_file(str(tmp_path / "t.safetensors"))
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    with safe_open(str(tmp_path / "t.safetensors"), "pt") as handle:
        assert handle.metadata() == metadata
    assert safetensors_bytes(tensors, {"one": "key"}) == safetensors_bytes(tensors, {"one": "key"})
