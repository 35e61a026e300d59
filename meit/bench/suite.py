"""Suite files: a base recipe, shared overrides, and one entry per backbone (validated like recipes)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meit.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SynthData(_Strict):
    """Generate (once) a synthetic PTB-XL-layout dataset and prepare it, as the quickstart does."""

    n: int = Field(300, ge=30)
    seed: int = 0
    source: Literal["records100", "records500"] = "records100"


class SuiteEntry(_Strict):
    name: str
    overrides: list[str] = Field(default_factory=list)
    base_recipe: str | None = Field(
        None, description="this entry's own base recipe (e.g. a baseline that is not an LLM); the suite's "
                          "overrides still apply, so every row shares data, budget and evaluation")
    repeat_of: str | None = Field(
        None, description="an earlier entry this one repeats with another seed: their gap is the seed-to-seed "
                          "spread the table compares every other difference with")


class Suite(_Strict):
    name: str
    base_recipe: str
    output_dir: str = "runs/bench"
    data_path: str | None = None
    synth: SynthData | None = None
    overrides: list[str] = Field(default_factory=list)
    backbones: list[SuiteEntry]
    perturb: list[str] = Field(default_factory=list, description="robustness sweep per backbone, e.g. [gaussian]")
    reference: str | None = Field(None, description="CSV of published numbers to show beside ours")
    reference_dataset: str | None = None


def load_suite(path: str | Path) -> tuple[Suite, Path]:
    """Parse a suite file; relative paths inside it are relative to the repository root or the file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"suite file not found: {file}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
        suite = Suite.model_validate(data)
    except yaml.YAMLError as err:
        raise ConfigError(f"suite {file} is not valid YAML: {err}") from err
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid suite {file}: {problems}") from None
    if suite.data_path is None and suite.synth is None:
        raise ConfigError(f"suite {file}: set either data_path (a prepared dataset) or synth")
    names = [b.name for b in suite.backbones]
    if len(set(names)) != len(names):
        raise ConfigError(f"suite {file}: backbone names repeat: {names}")
    for index, entry in enumerate(suite.backbones):
        if entry.repeat_of is not None and entry.repeat_of not in names[:index]:
            raise ConfigError(f"suite {file}: backbones[{index}] ({entry.name}): repeat_of={entry.repeat_of!r} "
                              f"must name an earlier entry, one of {names[:index]}")
    return suite, file.resolve().parent


def resolve_path(value: str, suite_dir: Path) -> Path:
    """A path as written, else relative to the suite file, else relative to the repository root."""
    candidate = Path(value)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    for base in (suite_dir, Path(__file__).resolve().parents[2]):
        if (base / candidate).exists():
            return base / candidate
    return candidate
