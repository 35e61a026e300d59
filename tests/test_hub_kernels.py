"""Importing meit stops any library from fetching a compute kernel from the Hub (meit downloads nothing at run time).

The case that made this necessary: transformers 5.25 installs ``kernels``; peft imports bitsandbytes; bitsandbytes,
on a CPU with AVX512-BF16, calls ``kernels.get_kernel`` at import to download a compiled GEMM from the Hub.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import meit  # noqa: F401  (installs the guard)
from meit.hub_kernels import ALLOW_ENV, HubKernelRefused

kernels = pytest.importorskip("kernels", reason="transformers >= 5.25 installs kernels")


def test_get_kernel_refuses_with_a_message_that_names_the_kernel_and_the_switch(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(HubKernelRefused, match=rf"'kernels-community/x'.*{ALLOW_ENV}=1"):
        kernels.get_kernel("kernels-community/x", version=1)


def test_the_switch_lets_the_call_through_to_the_real_get_kernel(monkeypatch):
    seen = []
    monkeypatch.setattr(kernels.get_kernel, "__wrapped__", lambda *a, **k: seen.append((a, k)) or "kernel")
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert kernels.get_kernel("kernels-community/x", version=1) == "kernel"
    assert seen == [(("kernels-community/x",), {"version": 1})]


@pytest.mark.parametrize("order", [
    "import meit\nimport kernels\nkernels.get_kernel.__wrapped__ = recorder\n",  # kernels imported after meit
    "import kernels\nkernels.get_kernel = recorder\nimport meit\n",  # kernels imported before meit
    # kernels reloaded after meit (its get_kernel is new and unguarded unless the import hook sees the reload)
    "import importlib, kernels, meit\nimportlib.reload(kernels)\nkernels.get_kernel.__wrapped__ = recorder\n",
], ids=["meit-first", "kernels-first", "kernels-reloaded"])
def test_peft_and_bitsandbytes_never_reach_the_real_get_kernel(tmp_path, order):
    """In a fresh interpreter whose real ``get_kernel`` is a recorder: importing peft (and with it bitsandbytes)
    never reaches it, and no warning about a kernel reaches stderr. Without meit, the recorder is called once on a
    CPU with AVX512-BF16 (checked when this was written); elsewhere bitsandbytes does not ask."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n"
        "calls = []\n"
        "def recorder(*args, **kwargs):\n"
        "    calls.append(args)\n"
        "    raise RuntimeError('the recorder was reached')\n"
        + order +
        "import peft\n"
        "assert 'bitsandbytes' in sys.modules\n"
        "print('calls', len(calls))\n")
    env = {k: v for k, v in os.environ.items() if k != ALLOW_ENV}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "calls 0" in out.stdout, out.stdout + out.stderr
    assert "kernels-community" not in out.stderr, out.stderr
