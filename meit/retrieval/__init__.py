"""Retrieval of similar cases and zero-shot classification on an ECG–text embedding space."""
