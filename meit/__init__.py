"""meit: instruction-tune LLMs to write clinical reports from 12-lead ECGs."""

__version__ = "0.1.0"
