"""Synthetic 12-lead ECGs with known findings and English reports, in PTB-XL's raw layout.

``generate_ptbxl_layout`` writes a dataset ``meit prep ptbxl`` reads like the real PTB-XL;
``synthesize_record`` makes one record in memory. See docs/synth.md for the model.
"""

from meit.synth.findings import CATALOGUE, LabelMix
from meit.synth.noise import NoiseMix
from meit.synth.record import SynthRecord, Truth, make_record, synthesize_record
from meit.synth.writer import SynthSummary, generate_ptbxl_layout

__all__ = [
    "CATALOGUE",
    "LabelMix",
    "NoiseMix",
    "SynthRecord",
    "SynthSummary",
    "Truth",
    "generate_ptbxl_layout",
    "make_record",
    "synthesize_record",
]
