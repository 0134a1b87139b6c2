"""The house's layout, checked (issue 15): no import cycle among the package's modules, no
module importing a later stage of the pipeline (structure -> graph -> batch -> model -> metrics
and MLflow -> tuning -> commands), and no function longer than 80 lines.

The import graph is read from the source with :mod:`ast` (every ``import``, at module level or
inside a function), over ``zoo/``, ``models/`` (``zoo.models``) and ``tuning/`` (``zoo.tuning``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"zoo": ROOT / "zoo", "zoo.models": ROOT / "models", "zoo.tuning": ROOT / "tuning"}

STAGES = [
    # 0: foundations every stage may use
    ["zoo._backend", "zoo.errors", "zoo.files", "zoo.faults", "zoo.keys", "zoo.names",
     "zoo.processes", "zoo.versions", "zoo.elements", "zoo.malloc", "zoo.progress"],
    # 1: structures: reading, checking, splitting, target transforms
    ["zoo.dataset", "zoo.readers", "zoo.splits", "zoo.transforms", "zoo.protocol", "zoo.domain"],
    # 2: structure -> graph -> batch
    ["zoo.graphs"],
    # 3: models, losses, metrics, what a model is saved as, the config that builds it
    ["zoo.models", "zoo.losses", "zoo.metrics", "zoo.bundle", "zoo.config", "zoo.cgcnn_import"],
    # 4: runs: training, prediction, MLflow, run folders, comparison, plots, serving
    ["zoo.tracking", "zoo.run_folder", "zoo.plots", "zoo.compare", "zoo.resolve",
     "zoo.predictor", "zoo.ensemble", "zoo.loaded_model", "zoo.training", "zoo.serving",
     "zoo.pyfunc_model",
     "zoo.ui_guard", "zoo.calibration", "zoo.runs_table", "zoo.pretrained", "zoo.derived",
     "zoo.screen_chunk", "zoo.screen_output", "zoo.screen_plots"],
    # 5: tuning and benchmarks over the training function
    ["zoo.tuning", "zoo.benchmark", "zoo.benchmark_report", "zoo.benchmark_tuning",
     "zoo.screening", "zoo.data_card"],
    # 6: the command line
    ["zoo.commands", "zoo.cli"],
]  # fmt: skip


def modules() -> dict[str, Path]:
    found = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [p for p in path.relative_to(root).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (a package's own submodules excepted)."""
    known = modules()

    def resolve(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for target in map(resolve, targets):
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def stage(module: str) -> int:
    if module == "zoo":  # the package itself: its public names are imported on first use
        return 0
    for number, members in enumerate(STAGES):
        if any(module == m or module.startswith(m + ".") for m in members):
            return number
    raise AssertionError(f"{module} has no stage: add it to STAGES in tests/test_layout.py")


def test_no_import_cycle():
    graph, cycles = import_graph(), []
    for start in graph:  # a path from start back to itself
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "\n".join(sorted(set(cycles)))


def test_no_module_imports_a_later_stage():
    upward = [
        f"{module} (stage {stage(module)}) imports {target} (stage {stage(target)})"
        for module, targets in import_graph().items()
        for target in targets
        if stage(target) > stage(module)
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_function_over_80_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, "\n".join(long)
