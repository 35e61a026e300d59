"""Inference: turning ECGs into report text with a built or loaded model (batched, single record).

It sits just above ``meit.models``, so training (validation samples), evaluation and serving share one
decoding path without depending on each other.
"""
