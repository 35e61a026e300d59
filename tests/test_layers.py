"""The packages form one-way layers: a package imports only packages below it (docs/architecture.md).

Every import counts, function-local and ``TYPE_CHECKING`` ones included, and every module of ``meit`` and
``data_prep`` must belong to a layer, so a new package has to be placed before it can land. There is no
exceptions list: a failure here means the import (or the code) belongs somewhere else.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: lowest first; a unit may import units of lower layers, and leaf modules may also import each other
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("leaf", frozenset({
        "meit", "meit.hub_kernels", "meit.errors", "meit.paths", "meit.hashing", "meit.leads", "meit.config",
        "meit.tables",
        "meit.findings", "meit.findings_text", "meit.findings_lexicon", "meit.findings_scp", "meit.publish",
        "meit.cache_build", "meit.ecg_signal", "meit.records", "meit.code_version",
    })),
    ("measure", frozenset({"meit.measure"})),
    ("verify", frozenset({"meit.verify"})),
    ("data_prep", frozenset({"data_prep"})),
    ("synth", frozenset({"meit.synth"})),
    ("render", frozenset({"meit.render"})),
    ("data", frozenset({"meit.data"})),
    ("render_jobs", frozenset({"meit.render_jobs"})),
    ("models", frozenset({"meit.models"})),
    ("inference", frozenset({"meit.inference"})),
    ("training", frozenset({"meit.training"})),
    ("pretrain", frozenset({"meit.pretrain"})),
    ("evaluation", frozenset({"meit.evaluation"})),
    ("classify", frozenset({"meit.classify"})),
    ("retrieval", frozenset({"meit.retrieval"})),
    ("quickstart", frozenset({"meit.quickstart"})),
    ("serve", frozenset({"meit.serve"})),
    ("bench", frozenset({"meit.bench"})),
    ("cli", frozenset({"meit.cli"})),
    ("entry point", frozenset({"meit.__main__"})),
)
LAYER_OF = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}
LEAF = 0


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (or the package a name was taken from)
    line: int
    local: bool  # inside a function


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return sorted([*ROOT.glob("meit/**/*.py"), *ROOT.glob("data_prep/**/*.py")])


def imports_of(path: Path) -> list[Import]:
    """Every import of a ``meit`` / ``data_prep`` module in ``path``, with whether it sits in a function."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    in_function = {id(node) for func in ast.walk(tree) if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
                   for node in ast.walk(func)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            targets = [origin]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in ("meit", "data_prep"):
                found.append(Import(module, target, node.lineno, id(node) in in_function))
    return found


def unit_of(module: str) -> str:
    """The layered unit a module belongs to: the longest name in the layer table that contains it."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        candidate = ".".join(parts[:size])
        if candidate in LAYER_OF:
            return candidate
    raise KeyError(module)


@functools.cache
def all_imports() -> list[Import]:
    return [imp for path in source_files() for imp in imports_of(path)]


def test_every_module_has_a_layer():
    missing = []
    for path in source_files():
        try:
            unit_of(module_name(path))
        except KeyError:
            missing.append(module_name(path))
    assert not missing, f"place these modules in LAYERS (tests/test_layers.py, docs/architecture.md): {missing}"


def test_imports_only_go_down():
    wrong = []
    for imp in all_imports():
        source, target = unit_of(imp.source), unit_of(imp.target)
        if source == target:
            continue
        low, high = LAYER_OF[target], LAYER_OF[source]
        if low < high or (low == high == LEAF):
            continue
        wrong.append(f"{imp.source}:{imp.line} imports {imp.target} "
                     f"({LAYERS[high][0]} may not import {LAYERS[low][0]})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_cycle_between_units():
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in all_imports():
        source, target = unit_of(imp.source), unit_of(imp.target)
        if source != target:
            edges[source].add(target)
    assert not _cycles(edges)


@pytest.mark.parametrize("unit", sorted({u for _, units in LAYERS for u in units} - {"meit", "meit.__main__"}))
def test_no_function_local_import_of_a_higher_or_same_layer_package(unit):
    """A function-local import may defer a heavy module (torch, a model family); it may not hide a cycle."""
    hidden = [f"{imp.source}:{imp.line} → {imp.target}" for imp in all_imports()
              if imp.local and unit_of(imp.source) == unit and unit_of(imp.target) != unit
              and LAYER_OF[unit_of(imp.target)] >= LAYER_OF[unit] and LAYER_OF[unit] != LEAF]
    assert not hidden


def test_the_checker_sees_violations(tmp_path):
    """The walker reads function-local and relative imports (so the tests above can fail)."""
    pkg = tmp_path / "meit" / "data"
    pkg.mkdir(parents=True)
    probe = pkg / "probe.py"
    probe.write_text("def f():\n    from meit.training import loop\n    from ..models import x\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = imports_of(probe)
    finally:
        ROOT = saved
    assert [(i.target, i.local) for i in found] == [("meit.training", True), ("meit.models", True)]
    assert LAYER_OF[unit_of("meit.training.loop")] > LAYER_OF[unit_of("meit.data.dataset")]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_architecture_page_matches_the_layer_table():
    """docs/architecture.md shows the layers as this test enforces them, in the same order."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = "<!-- layers: kept equal to LAYERS in tests/test_layers.py -->"
    table = text.split(start, 1)[1].split("<!-- /layers -->")[0]
    documented = []
    for line in table.strip().splitlines()[2:]:  # skip the header and the rule
        name, units = (cell.strip() for cell in line.strip("|").split("|")[:2])
        documented.append((name, frozenset(re.findall(r"`([^`]+)`", units))))
    assert documented == list(LAYERS)
