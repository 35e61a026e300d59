"""No compute kernel fetched from the Hugging Face Hub unasked.

transformers (since 5.25) installs the ``kernels`` package, whose ``get_kernel`` downloads compiled code from the
Hub and loads it into the process. bitsandbytes calls it on import when the CPU has AVX512-BF16, and peft imports
bitsandbytes, and transformers imports peft: so on such a machine any training run would fetch and execute a Hub
binary that nobody asked for. meit downloads nothing at run time, so importing meit wraps ``kernels.get_kernel``
(now, and whenever ``kernels`` is imported or reloaded later) to raise :class:`HubKernelRefused`; bitsandbytes then
keeps its own CPU code, and the warning it logs for the refusal (which advises installing ``kernels``) is dropped.
``MEIT_HUB_KERNELS=1`` lets the call through. Kernels a user asks for explicitly (transformers' ``use_kernels``,
``kernels.kernelize``) go through other functions and are left to that choice.
"""

from __future__ import annotations

import functools
import importlib.abc
import logging
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType

ALLOW_ENV = "MEIT_HUB_KERNELS"
_MARK = "__meit_refuses_hub_kernels__"  # on the wrapper and on the finder: what meit installed, across reloads
_INSTALL_LOCK = threading.Lock()
# loggers that report a refused kernel as a failure with advice that does not apply here
_REFUSAL_LOGGERS = ("bitsandbytes.backends.cpu.ops",)


class HubKernelRefused(RuntimeError):
    """A library asked for a compute kernel from the Hub while meit refuses run-time downloads."""


def hub_kernels_allowed() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _refusing(get_kernel: Callable) -> Callable:
    @functools.wraps(get_kernel)
    def get_kernel_unless_allowed(repo_id, *args, **kwargs):
        if hub_kernels_allowed():  # the original is read at call time: __wrapped__ (tests swap it)
            return get_kernel_unless_allowed.__wrapped__(repo_id, *args, **kwargs)
        raise HubKernelRefused(
            f"meit does not fetch the compute kernel '{repo_id}' from the Hugging Face Hub at run time "
            f"(set {ALLOW_ENV}=1 to allow it)")

    setattr(get_kernel_unless_allowed, _MARK, True)
    return get_kernel_unless_allowed


def _guard(module: ModuleType) -> None:
    get_kernel = getattr(module, "get_kernel", None)
    if callable(get_kernel) and not getattr(get_kernel, _MARK, False):
        module.get_kernel = _refusing(get_kernel)


class _GuardingLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        _guard(module)

    def __getattr__(self, name: str):  # resource readers, get_filename, is_package, ...: the real loader's
        if name == "inner":  # not set yet (copy, pickle): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.inner, name)


class _GuardOnImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of the top-level ``kernels`` package so its ``get_kernel`` is guarded once it exists."""

    __meit_refuses_hub_kernels__ = True  # _MARK

    def find_spec(self, fullname, path, target=None):
        if fullname != "kernels":
            return None
        for finder in sys.meta_path:
            if getattr(finder, _MARK, False) or not hasattr(finder, "find_spec"):
                continue  # this finder, or one a reloaded copy of this module installed
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _GuardingLoader(spec.loader)
                return spec
        return None


class _DropRefusals(logging.Filter):
    __meit_refuses_hub_kernels__ = True  # _MARK

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        # by name: a reloaded copy of this module raises its own HubKernelRefused class
        return not any(type(arg).__name__ == HubKernelRefused.__name__ for arg in args)


def install() -> None:
    """Guard ``kernels.get_kernel`` in this process (idempotent; cheap: ``kernels`` is not imported for it)."""
    with _INSTALL_LOCK:
        if "kernels" in sys.modules:
            _guard(sys.modules["kernels"])
        if not any(getattr(finder, _MARK, False) for finder in sys.meta_path):
            sys.meta_path.insert(0, _GuardOnImport())  # a later import, or a reload, of kernels is guarded too
        for name in _REFUSAL_LOGGERS:
            logger = logging.getLogger(name)
            if not any(getattr(f, _MARK, False) for f in logger.filters):
                logger.addFilter(_DropRefusals())
