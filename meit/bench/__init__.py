"""Backbone benchmark suites: train + evaluate each backbone, collect tables and plots."""
