"""Shared fixtures: a small synthetic raw PTB-XL root and its prepared dataset (built once per session)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared machine: one intra-op thread avoids spin-waiting (10-40x faster here).
    Use it per module: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory):
    from meit.synth import generate_ptbxl_layout

    root = tmp_path_factory.mktemp("synth_raw")
    generate_ptbxl_layout(root, n=80, seed=7, fs=500, seconds=10.0, workers=1, write_lr=True, progress=False)
    return root


@pytest.fixture(scope="session")
def prepared_100hz(synthetic_raw, tmp_path_factory):
    from data_prep.ptbxl import prepare_ptbxl

    out = tmp_path_factory.mktemp("prepared") / "ptbxl100"
    prepare_ptbxl(synthetic_raw, out, source="records100", report="original", workers=1, seed=0)
    return out
