"""The rate and length a prepared dataset stores, and the default the encoder reads at.

A recipe that leaves ``data.fs`` / ``data.seconds`` unset means "as prepared": a 100 Hz preparation is
read at 100 Hz. (A fixed default of 500 Hz once upsampled such data 5× without a word.) Setting them is
an explicit request to resample or crop at load time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from meit.config import DataConfig
from meit.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def stored_rate(path: str | Path) -> tuple[int, float]:
    """``(fs, seconds)`` of the signals in the prepared dataset at ``path``.

    Read from ``manifest.json`` (written by ``meit prep``); a folder without one (e.g. saved by
    ``datasets`` directly) is read from its first row instead.
    """
    root = Path(path).expanduser()
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            fs, seconds = int(meta["fs"]), float(meta["config"]["seconds"])
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{manifest}: cannot read the stored rate (fs, config.seconds): {err}") from err
        return fs, seconds
    from meit.data.dataset import load_prepared

    for split in load_prepared(root).values():
        if len(split):
            row = split.with_format("numpy", columns=["ecg", "fs"])[0]
            fs = int(row["fs"])
            return fs, float(row["ecg"].shape[-1]) / fs
    raise DataError(f"{root}: every split is empty, so there is no stored rate to read")


def data_rate(data: DataConfig) -> tuple[int, float]:
    """``(fs, seconds)`` the encoder reads by default: ``data.fs`` / ``data.seconds`` when set, else as stored."""
    if data.fs is not None and data.seconds is not None:
        return data.fs, data.seconds
    if not data.path:
        missing = [key for key, value in (("data.fs", data.fs), ("data.seconds", data.seconds)) if value is None]
        raise ConfigError(f"{' and '.join(missing)} not set and no data.path to read the stored rate from: "
                          "set data.path to a prepared dataset, or set them (e.g. data.fs=100 data.seconds=10)")
    fs, seconds = stored_rate(data.path)
    chosen = (data.fs or fs, data.seconds or seconds)
    if chosen != (fs, seconds):
        log.info("%s stores %d Hz × %g s; the encoder reads %d Hz × %g s (resampled/cropped at load time)",
                 data.path, fs, seconds, *chosen)
    return chosen
