"""meit: instruction-tune LLMs to write clinical reports from 12-lead ECGs."""

from meit import hub_kernels as _hub_kernels

__version__ = "0.1.0"

_hub_kernels.install()  # no compute kernel is fetched from the Hub at run time (see meit/hub_kernels.py)
