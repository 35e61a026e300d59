"""One ECG file → a clean ``(12, T)`` float32 millivolt array, the same way for training and inference.

:func:`read_signal` is the reader behind ``meit prep`` (the 12 standard leads picked and reordered by
name, any other signal dropped and recorded, units to mV, short gaps repaired, resampled and
cropped/padded to the policy); :func:`read_ecg_file` is the reader
behind ``meit generate`` and retrieval queries: it accepts a wfdb record or a ``.npy`` array, reads
wfdb records through :func:`read_signal` and applies the same repair policy to arrays, so a model
sees what preparation would have stored.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import wfdb

from meit.ecg_signal import crop_or_pad, resample
from meit.errors import ConfigError, DataError
from meit.leads import CANONICAL_LEADS
from meit.records.repair import RecordRejected, SignalPolicy, repair_signal
from meit.records.wfdb_header import Header, load_header, millivolts_per_unit, read_header

#: prefix of the repair entry naming the signals dropped beyond the 12 standard leads
DROPPED_LEADS = "dropped_leads"

# Bytes per sample of the WFDB storage formats we can size-check; others are checked by decoding.
_BYTES_PER_SAMPLE: dict[str, float] = {
    "8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3,
}


def _check_files(path: str, header: Header) -> None:
    """Missing or short signal files are told apart from undecodable ones before decoding."""
    directory = os.path.dirname(path)
    n_sig = header.n_sig or 0
    spf = header.samps_per_frame or [1] * n_sig
    offsets = header.byte_offset or [0] * n_sig
    per_frame: dict[str, float] = {}
    first_offset: dict[str, int] = {}
    sizable = True
    for file_name, fmt, frames, off in zip(header.file_name, header.fmt, spf, offsets, strict=False):
        per = _BYTES_PER_SAMPLE.get(str(fmt))
        sizable = sizable and per is not None
        per_frame[file_name] = per_frame.get(file_name, 0.0) + (per or 0.0) * (frames or 1)
        first_offset.setdefault(file_name, int(off or 0))
    for file_name, width in per_frame.items():
        full = os.path.join(directory, file_name)
        if not os.path.isfile(full):
            raise RecordRejected("missing_dat", f"{full} not found")
        expected = int(np.ceil(width * header.sig_len)) + first_offset[file_name]
        actual = os.path.getsize(full)
        if sizable and actual < expected:
            raise RecordRejected("truncated_dat", f"{full}: {actual} bytes, header implies {expected}")



def _fast_physical(path: str, header: Header, perm: list[int]) -> np.ndarray | None:
    """Format-16 single-file records decoded with numpy, as wfdb would (invalid -32768 → NaN).

    Returns (12, T) float64 in canonical order, or None when the layout needs wfdb.
    """
    if (
        any(f != "16" for f in header.fmt) or len(set(header.file_name)) != 1
        or any(s != 1 for s in header.samps_per_frame) or any(header.skew) or len(set(header.byte_offset)) != 1
    ):
        return None
    assert header.sig_len is not None
    full = os.path.join(os.path.dirname(path), header.file_name[0])
    count = header.sig_len * header.n_sig
    digital = np.fromfile(full, dtype="<i2", count=count, offset=header.byte_offset[0])
    if digital.size != count:
        raise RecordRejected("truncated_dat", f"{full}: {digital.size} samples, header implies {count}")
    frames = digital.reshape(header.sig_len, header.n_sig).T[perm]
    invalid = frames == -32768
    baseline = np.asarray(header.baseline, dtype=np.float64)[perm, None]
    gain = np.asarray(header.adc_gain, dtype=np.float64)[perm, None]
    physical = (frames - baseline) / gain
    physical[invalid] = np.nan
    return physical


def read_signal(path: str, policy: SignalPolicy) -> tuple[np.ndarray, list[str]]:
    """Read, reorder, repair, resample and crop/pad one record to float32 ``(12, policy.samples)``.

    ``path`` is the record path without extension. Raises :class:`RecordRejected`.
    """
    header, perm, fast = read_header(path, policy)
    _check_files(path, header)
    kept = set(perm)
    dropped = [header.sig_name[i] or f"signal {i}" for i in range(header.n_sig) if i not in kept]
    sig = _fast_physical(path, header, perm) if fast else None
    if sig is None:
        try:
            raw = wfdb.rdrecord(path, physical=True).p_signal
        except Exception as err:
            raise RecordRejected("unreadable_dat", f"{path}: {type(err).__name__}: {err}") from None
        if raw is None or raw.ndim != 2 or raw.shape[1] != header.n_sig:
            raise RecordRejected("unreadable_dat", f"{path}: decoded shape {getattr(raw, 'shape', None)}")
        sig = raw[:, perm].T.astype(np.float64, copy=True)
    units = [header.units[p] if p < len(header.units) else "" for p in perm]
    scale = np.array([millivolts_per_unit(u) or 1.0 for u in units], dtype=np.float64)  # read_header checked them
    if (scale != 1.0).any():
        sig *= scale[:, None]
    fs_src = round(header.fs)
    sig, repairs = repair_signal(sig, fs_src, policy)
    if dropped:  # signals beyond the 12 standard leads (e.g. Frank vx, vy, vz) are not stored
        repairs.insert(0, f"{DROPPED_LEADS}:{','.join(dropped)}")
    if fs_src != policy.fs:
        sig = resample(sig, fs_src, policy.fs)
    n = sig.shape[1]
    if n < policy.samples:
        repairs.append(f"padded:end:{policy.samples - n} samples")
    sig = crop_or_pad(sig, policy.samples, mode="start")
    out = sig.astype(np.float32)
    if not np.isfinite(out).all():  # e.g. absurd values overflowing float32
        raise RecordRejected("unusable_signal", "non-finite values after conversion to float32")
    return out, repairs


#: above this median absolute amplitude (mV) an array is not in millivolts (microvolts, most likely)
NPY_MAX_MEDIAN_ABS_MV = 20.0
#: below this largest absolute amplitude (mV) an array is not in millivolts (volts, most likely)
NPY_MIN_PEAK_ABS_MV = 0.02


def _npy_leads_first(file: Path, array: np.ndarray) -> np.ndarray:
    """The array as ``(12, T)``: whichever axis has 12 entries is the leads; refuse anything else."""
    leads = len(CANONICAL_LEADS)
    if array.dtype.kind not in "iuf":
        raise DataError(f"{file}: expected a real numeric array (int or float), got dtype {array.dtype}")
    if array.ndim != 2 or leads not in array.shape:
        raise DataError(f"{file}: expected a 12 × T (or T × 12) array in canonical lead order, got shape {array.shape}")
    if array.shape == (leads, leads):
        raise DataError(f"{file}: shape (12, 12) is ambiguous (which axis is the leads?); "
                        "save at least 13 samples per lead")
    return array if array.shape[0] == leads else array.T


def _check_millivolts(file: Path, array: np.ndarray) -> None:
    """Refuse an array whose amplitudes cannot be millivolts; an ``.npy`` file carries no units."""
    magnitude = np.abs(array[np.isfinite(array)])
    if not magnitude.size:
        raise DataError(f"{file}: no finite sample in the array")
    median = float(np.median(magnitude))
    if median > NPY_MAX_MEDIAN_ABS_MV:
        raise DataError(
            f"{file}: median absolute amplitude is {median:.4g}, more than {NPY_MAX_MEDIAN_ABS_MV:g} mV; "
            "the array must be in millivolts (this looks like microvolts: divide by 1000)"
        )
    peak = float(magnitude.max())
    if 0 < peak < NPY_MIN_PEAK_ABS_MV:
        raise DataError(
            f"{file}: largest absolute amplitude is {peak:.4g}, less than {NPY_MIN_PEAK_ABS_MV:g} mV; "
            "the array must be in millivolts (this looks like volts: multiply by 1000)"
        )


def _read_npy(file: Path, fs: int | None) -> tuple[np.ndarray, int, list[str]]:
    """A ``.npy`` array: shape and units checked, then repaired exactly like a wfdb record."""
    if fs is None:
        raise DataError(f"{file}: an array file carries no sampling rate; pass --fs")
    if fs <= 0:
        raise ConfigError(f"--fs: expected a positive sampling rate in Hz for {file}, got {fs}")
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{file}: cannot be read as a .npy array ({type(err).__name__}: {err})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{file}: expected one array, got {type(array).__name__}")
    sig = _npy_leads_first(file, array).astype(np.float64)  # a copy: repair works in place
    _check_millivolts(file, sig)
    policy = SignalPolicy(fs=int(fs), seconds=sig.shape[1] / fs)
    try:
        sig, repairs = repair_signal(sig, int(fs), policy)
    except RecordRejected as err:
        raise DataError(f"{file}: {err}") from None
    out = sig.astype(np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"{file}: values beyond the float32 range (largest {np.abs(sig).max():.4g})")
    return out, int(fs), repairs


def read_ecg(path: str | Path, fs: int | None = None) -> tuple[np.ndarray, int, list[str]]:
    """One record for inference: ``(signal (12, T) float32 mV, fs, repairs)``, refused with a DataError.

    A wfdb record (path with or without extension) is read by :func:`read_signal` at its own rate
    and length; a ``.npy`` array (12 × T or T × 12, mV, canonical order; ``fs`` required) gets the
    same repair policy after a shape and units check. ``repairs`` lists what was done, as in prep.
    """
    file = Path(path)
    if file.suffix == ".npy":
        return _read_npy(file, fs)

    record_path = file.with_suffix("") if file.suffix in {".hea", ".dat"} else file
    if not Path(f"{record_path}.hea").is_file():
        raise DataError(f"{record_path}.hea not found: pass a wfdb record path or a .npy array")
    # the same reader as `meit prep`: header checks, leads by name, units to mV, amplitude limits, gaps repaired
    try:
        header, _, _ = load_header(str(record_path))
        assert header.sig_len is not None  # load_header refuses a header without one
        policy = SignalPolicy(fs=round(header.fs), seconds=header.sig_len / float(header.fs))
        signal, repairs = read_signal(str(record_path), policy)
    except RecordRejected as err:
        raise DataError(f"{record_path}: {err}") from err
    return signal, policy.fs, repairs


def read_ecg_file(path: str | Path, fs: int | None = None) -> tuple[np.ndarray, int]:
    """:func:`read_ecg` without the repairs: ``(signal (12, T) float32 mV, fs)``."""
    signal, rate, _ = read_ecg(path, fs)
    return signal, rate
