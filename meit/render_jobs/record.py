"""``meit render --record PATH --out FILE``: one wfdb record or ``.npy`` array → image + sidecar files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from meit.publish import OutputError, atomic_file
from meit.records import read_ecg
from meit.render.store import png_bytes
from meit.render_jobs.one import RenderSettings, render_one


def output_paths(out: str | Path, mode: str) -> dict[str, Path]:
    """``FILE`` (any of .png/.json/.npy or no suffix) → the files written: image, sidecar, and array for encodings."""
    base = Path(out).expanduser()
    if base.suffix in {".png", ".json", ".npy"}:
        base = base.with_suffix("")
    paths = {"image": base.with_name(base.name + ".png"), "sidecar": base.with_name(base.name + ".json")}
    if mode != "paper":
        paths["array"] = base.with_name(base.name + ".npy")
    return paths


def render_record_file(path: str | Path, out: str | Path, settings: RenderSettings, *, fs: int | None = None,
                       overwrite: bool = False) -> dict[str, Path]:
    """Read the record as `meit prep` would (units, lead order, gap repair), render it, write its files.

    Existing files are replaced only with ``overwrite``; each file is written atomically.
    """
    paths = output_paths(out, settings.mode)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{', '.join(existing)}: exist(s); pass --overwrite to replace, or choose another --out")
    signal, rate, repairs = read_ecg(path, fs)
    rendered = render_one(signal, rate, settings, Path(path).with_suffix("").name)
    sidecar = {**rendered.sidecar, "source": str(Path(path).expanduser().resolve()), "repairs": repairs}
    with atomic_file(paths["image"], "wb", encoding=None) as handle:
        handle.write(png_bytes(rendered.image))
    if rendered.array is not None:
        with atomic_file(paths["array"], "wb", encoding=None) as handle:
            np.save(handle, rendered.array, allow_pickle=False)
    with atomic_file(paths["sidecar"]) as handle:
        handle.write(json.dumps(sidecar, indent=1) + "\n")
    return paths
