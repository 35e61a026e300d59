"""ECGs as images: paper-style rendering, scan/photo augmentations, and Qiu et al.'s signal encodings.

A low layer (it imports only leaf modules) so that ``meit.data`` can render on the fly inside a data
loader. ``render_paper`` draws a (12, T) millivolt signal as ECG paper (25 mm/s, 10 mm/mV, 1 mm / 5 mm
grid, calibration pulses, lead labels) and returns the image with a sidecar giving every lead's box in
pixels; ``augment`` makes a page look scanned or photographed; ``signal_image`` encodes the signal as
GAF / recurrence-plot / MTF channels; ``denoise_paper`` flattens the background and removes the
grid before an encoder reads a page. ``meit.render.store`` defines the folder ``meit render`` writes.
See docs/images.md.
"""

from meit.render.augment import EFFECTS, Augmentation, augment, augmentation_parameters, geometry_matrix
from meit.render.denoise import DENOISE_METHODS, denoise_paper
from meit.render.encodings import ENCODINGS, VALUE_RANGE, signal_image
from meit.render.layout import LAYOUTS, PaperLayout, get_layout
from meit.render.paper import RenderedEcg, check_signal, render_paper

#: what `meit render --mode` accepts: the paper page or one of the signal encodings
MODES: tuple[str, ...] = ("paper", *ENCODINGS)

__all__ = [
    "DENOISE_METHODS",
    "EFFECTS",
    "ENCODINGS",
    "LAYOUTS",
    "MODES",
    "VALUE_RANGE",
    "Augmentation",
    "PaperLayout",
    "RenderedEcg",
    "augment",
    "augmentation_parameters",
    "check_signal",
    "denoise_paper",
    "geometry_matrix",
    "get_layout",
    "render_paper",
    "signal_image",
]
