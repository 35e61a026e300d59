"""Write 12-lead records as WFDB format-16 files, byte-identical to ``wfdb.wrsamp``.

``wfdb.wrsamp`` spends most of its time validating fields; for fixed 16-bit, gain-1000 records the
header and the interleaved little-endian samples can be written directly. A test checks the bytes
against ``wfdb.wrsamp`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from meit.synth.dipole import ADC_GAIN

#: Lead names as PTB-XL spells them in its headers (canonical order).
PTBXL_LEAD_NAMES: tuple[str, ...] = (
    "I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6",
)


def header_text(record_name: str, digital: np.ndarray, fs: int, names: Sequence[str] = PTBXL_LEAD_NAMES) -> str:
    """The ``.hea`` text wfdb writes for a (leads, T) int16 array with gain 1000/mV, baseline 0."""
    n_sig, n_samp = digital.shape
    lines = [f"{record_name} {n_sig} {fs} {n_samp}"]
    checksums = np.sum(digital, axis=1, dtype=np.int64) % 65536
    for lead in range(n_sig):
        lines.append(
            f"{record_name}.dat 16 {ADC_GAIN}(0)/mV 16 0 {int(digital[lead, 0])} "
            f"{int(checksums[lead])} 0 {names[lead]}"
        )
    return "\n".join(lines) + "\n"


def write_record(base: Path, digital: np.ndarray, fs: int) -> None:
    """Write ``base.hea`` and ``base.dat`` (``base`` has no extension; its folder must exist)."""
    name = base.name
    base.with_name(name + ".hea").write_text(header_text(name, digital, fs))
    base.with_name(name + ".dat").write_bytes(np.ascontiguousarray(digital.T).astype("<i2").tobytes())
