"""A synthetic raw PTB-XL root and its preparation through the real ``meit prep ptbxl`` path.

The quickstart, the bench suites and the benchmarks all need "synthesise, then prepare"; each stage
is skipped when its output is already complete, so a re-run reuses finished work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal


def ensure_synthetic_raw(raw: Path, n: int, *, seed: int, seconds: float = 10.0, workers: int = 1,
                         progress: bool = True) -> Path:
    """``raw`` holds ``n`` synthetic 500 Hz records (+ 100 Hz copies) in PTB-XL layout."""
    from meit.synth.writer import generate_ptbxl_layout

    if not (raw / "ptbxl_database.csv").is_file():
        generate_ptbxl_layout(raw, n=n, seed=seed, fs=500, seconds=seconds, workers=workers, write_lr=True,
                              progress=progress)
    return raw


def ensure_prepared_ptbxl(raw: Path, prepared: Path, *, seed: int,
                          source: Literal["records100", "records500"] = "records100", workers: int = 1,
                          progress: bool = True) -> Path:
    """``prepared`` is ``raw`` after ``meit prep ptbxl`` (original reports, one of the two signal folders)."""
    from data_prep.ptbxl import prepare_ptbxl

    if not (prepared / "manifest.json").is_file():
        prepare_ptbxl(raw, prepared, source=source, report="original", workers=workers, seed=seed, progress=progress)
    return prepared


def synthetic_prepared(root: Path, n: int, *, seed: int, source: Literal["records100", "records500"] = "records100",
                       workers: int = 1, progress: bool = True) -> Path:
    """Both stages under ``root`` (``raw/`` and ``prepared/``); returns the prepared dataset."""
    raw = ensure_synthetic_raw(root / "raw", n, seed=seed, workers=workers, progress=progress)
    return ensure_prepared_ptbxl(raw, root / "prepared", seed=seed, source=source, workers=workers,
                                 progress=progress)
