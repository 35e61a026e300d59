"""The minimum versions pyproject.toml declares for the ML stack are the ones the test suite runs on.

A floor below what CI installs is a claim nothing checks (``torch>=2.4`` was declared while only 2.13 was
ever run). When the install moves to a newer release, this fails until the floor moves with it.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("torch", "transformers", "peft", "accelerate", "datasets", "deepspeed")


def _floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"].values()
    requirements = [*project["dependencies"], *(r for group in optional for r in group)]
    floors = {}
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*>=\s*([0-9][0-9.]*)", requirement)
        if match:
            floors[match.group(1).lower()] = match.group(2)
    return floors


def _minor(version: str) -> tuple[int, int]:
    major, minor, *_ = re.findall(r"\d+", version)
    return int(major), int(minor)


@pytest.mark.parametrize("package", CHECKED)
def test_the_declared_floor_is_the_tested_release(package):
    floors = _floors()
    assert package in floors, f"pyproject.toml declares no minimum version for {package}"
    installed = importlib.metadata.version(package)
    assert _minor(floors[package]) == _minor(installed), (
        f"pyproject.toml says {package}>={floors[package]} but the suite runs {installed}: "
        "set the floor to the release that is tested")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "scripts" / "constraints.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([0-9][0-9.]*)\s*$", line.split("#")[0].strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


@pytest.mark.parametrize("package", CHECKED[1:])  # torch is pinned in scripts/install.sh itself (CPU build)
def test_the_install_pins_the_release_the_floor_names(package):
    pins = _pins()
    assert package in pins, f"scripts/constraints.txt pins no release of {package}"
    assert _minor(pins[package]) == _minor(_floors()[package]), (
        f"scripts/constraints.txt pins {package}=={pins[package]} but pyproject.toml says "
        f"{package}>={_floors()[package]}: move them together")
