"""``meit render`` jobs: a prepared split or one record file → rendered images, sidecars and an index.

Separate from :mod:`meit.render` (the rendering core, below ``meit.data`` so the data pipeline can
render on the fly) because reading a prepared split goes through ``meit.data``; this package sits just
above it. The folder format is :mod:`meit.render.store`.
"""

from meit.render_jobs.one import RenderedRecord, RenderSettings, render_one
from meit.render_jobs.record import render_record_file
from meit.render_jobs.split import EXIT_NOTHING_RENDERED, EXIT_UNEXPECTED_ERRORS, render_split

__all__ = [
    "EXIT_NOTHING_RENDERED",
    "EXIT_UNEXPECTED_ERRORS",
    "RenderSettings",
    "RenderedRecord",
    "render_one",
    "render_record_file",
    "render_split",
]
