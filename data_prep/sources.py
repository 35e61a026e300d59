"""The raw sources ``meit prep`` can read: one module per source, each declaring one :class:`PrepSource`.

Adding a source is one module that defines ``SOURCE = PrepSource(...)`` plus its name in
:data:`SOURCE_MODULES`; the CLI builds ``meit prep <name>`` from the registry alone. ``meit --help``
imports every source module, so a source module's top level imports only the standard library and
light modules (``meit.errors``, this one); numpy, pandas, wfdb and the writer are imported inside the
functions that prepare data.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meit.errors import ConfigError

#: source modules in the order ``meit prep --help`` lists them
SOURCE_MODULES: tuple[str, ...] = ("data_prep.ptbxl", "data_prep.mimic_iv_ecg")


@dataclass(frozen=True)
class PrepSource:
    """One raw source: its ``meit prep`` sub-command and how to run it from the parsed arguments.

    ``add_arguments`` adds the source's own options (the options every source shares are added by
    the CLI first); ``prepare`` receives the parsed arguments and those shared settings as keyword
    arguments for the source's ``prepare_*`` function, and returns the manifest.
    """

    name: str
    title: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    prepare: Callable[[argparse.Namespace, dict[str, Any]], dict]


def sources() -> dict[str, PrepSource]:
    """Every registered source by name, in :data:`SOURCE_MODULES` order."""
    found: dict[str, PrepSource] = {}
    for module_name in SOURCE_MODULES:
        source = getattr(importlib.import_module(module_name), "SOURCE", None)
        if not isinstance(source, PrepSource):
            raise TypeError(f"{module_name}: a source module must define SOURCE = PrepSource(...)")
        if source.name in found:
            raise TypeError(f"{module_name}: source name {source.name!r} is already registered")
        found[source.name] = source
    return found


def get_source(name: str) -> PrepSource:
    """The source called ``name``, or a ConfigError listing the known ones."""
    known = sources()
    if name not in known:
        names = list(known)
        expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise ConfigError(f"prep: unknown source {name!r}; expected {expected}")
    return known[name]
