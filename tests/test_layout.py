"""Guards of the package layout: pure statistics, plugin discovery, DAG parsing, test server."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

PACKAGE = ROOT / "plugins" / "self_learning"
STATISTICS_MODULES = ["domain", "validation", "performance", "error_analysis", "drift", "retraining", "ab_testing",
                      "training", "importance", "estimation"]
ALLOWED_IMPORTS = {"__future__", "collections", "concurrent", "dataclasses", "datetime", "enum", "importlib", "reprlib",
                   "itertools", "math", "re", "typing", "warnings", "numpy", "pandas", "scipy", "sklearn"}

# Runs in a fresh interpreter: imports the statistics and exercises every public entry point with
# an audit hook that records any file write, network, subprocess or database access.
_PROBE = """
import json, sys
events = []
FORBIDDEN = ("socket.", "subprocess.", "os.system", "os.exec", "os.spawn", "sqlite3.", "shutil.")
def hook(event, args):
    if event.startswith(FORBIDDEN) or (event == "open" and isinstance(args[1], str) and set(args[1]) & set("wax+")):
        events.append(event)
import numpy as np, pandas as pd
from self_learning import (ab_testing, domain, drift, error_analysis, estimation, importance, performance, retraining,
                           training, validation)
import joblib
joblib.cpu_count(only_physical_cores=True)  # scikit-learn's one-time CPU probe (runs lscpu), cached from here on
sys.addaudithook(hook)
rng = np.random.default_rng(0)
y = rng.gamma(2, 1, 300); p = y + rng.normal(0, 0.3, 300)
frame = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(["a", "b"], 300)})
perf = performance.regression_performance(y, p, n_predicted=400)
performance.classification_performance((y > 2).astype(int), rng.uniform(size=300))
error_analysis.analyze_error_distribution(p - y).to_dict()
error_analysis.identify_systematic_errors(frame, p - y).to_dict()
fd = drift.detect_feature_drift(frame, frame.assign(x=frame.x + 1))
cd = drift.detect_concept_drift(y, p, y, p + 0.5)
drift.detect_prediction_drift(p, p + 1).to_dict()
ab = ab_testing.compare_arms(np.abs(p - y), np.abs(p - y) * 0.9, n_star=600)
ab_testing.decide(ab, ab_testing.sample_ratio_mismatch([300, 300], [0.5, 0.5]), days_elapsed=8).to_dict()
ab_testing.assign_arm("seed", "unit", {"a": 0.5, "b": 0.5})
ab_testing.arm_version("seed", "unit", "v1", "v2", ab_testing.ABTestConfig(traffic_split=0.3).traffic_split)
ab_testing.row_losses("binary_classification", [0, 1], [0.2, 0.9])
rows = frame.assign(actual_value=y, served_at=pd.date_range("2026-01-01", periods=300, freq="h"))
train, holdout = training.time_holdout(rows)
kinds = {"x": "numeric", "c": "categorical"}
fitted = training.fit(training.default_trainer("regression", kinds), train, kinds)
training.holdout_performance("regression", holdout, training.predict(fitted, holdout, kinds, "regression"),
                             model_version="v").to_dict()
importance.update_feature_weights(frame, y, feature_kinds=kinds).to_dict()
importance.permutation_weights(fitted, holdout, kinds, "regression", repeats=2)
retraining.should_retrain(labelled_outcomes=300, feature_drift=fd, concept_drift=cd, performance=perf).to_dict()
scored = frame.assign(predicted_value=p, actual_value=y)
estimation.estimate_performance(scored, scored.drop(columns="actual_value"), task_kind="regression").to_dict()
drift.detect_multivariate_drift(frame, frame.assign(x=frame.x + 1), classifier_rows=200).to_dict()
print(json.dumps({"events": events, "airflow": sorted(m for m in sys.modules if m.split(".")[0] == "airflow")}))
"""


def test_statistics_modules_import_nothing_but_numeric_libraries():
    """The core (and the old module names that re-export it) imports the standard library's pure
    modules and the numeric libraries only."""
    modules = [PACKAGE / f"{module}.py" for module in STATISTICS_MODULES] + sorted((PACKAGE / "core").rglob("*.py"))
    # the daily profiles (core/profiles.py): DataSketches' sketches, their container's bytes (json
    # header, struct, zlib) - pure computation, no I/O
    allowed = ALLOWED_IMPORTS | {"hashlib", "functools", "json", "struct", "zlib", "datasketches"}
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.relative_to(PACKAGE)} imports {name}"


# The rooms of the package, lowest first: a module may import its own room and the rooms below it,
# never one above (dags -> Airflow layer -> {loop, store} -> core). The old top-level module names
# are re-exports and count as the room they re-export. The command line (cli, __main__) is on top.
ROOMS = {"core": 0, "store": 1, "loop": 2, "airflow": 3, "demo": 4, "cli": 5}
AIRFLOW_LAYER = {"operators", "settings", "hooks", "outcome_sources", "notifications", "web"}
REEXPORTS = {"domain": "core", "validation": "core", "performance": "core", "error_analysis": "core", "drift": "core",
             "retraining": "core", "ab_testing": "core", "training": "core", "importance": "core",
             "estimation": "core",
             "pgcopy": "store", "lifecycle": "loop", "reporting": "loop", "report_html": "loop",
             "webapp": "airflow", "metrics": "airflow", "synthetic": "demo", "__main__": "cli"}


def _room(parts: tuple[str, ...]) -> str | None:
    """The room of a module given its path inside the package (None: the package itself, migrations)."""
    if not parts or parts[0] in ("__init__", "migrations"):
        return None
    head = parts[0]
    if head in ROOMS:
        return head
    if head in AIRFLOW_LAYER:
        return "airflow"
    return REEXPORTS.get(head, "unknown")


def _imported_rooms(path: Path):
    """(line, room) of every package module that ``path`` imports, relative or absolute."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = parts[:-1]  # the package a relative import starts from (for __init__ too)
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[tuple[str, ...]] = []
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            module = (*base, *(node.module.split(".") if node.module else ()))
            targets = [module] if module else [(alias.name,) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("self_learning."):
            targets = [tuple(node.module.split(".")[1:])]
        elif isinstance(node, ast.Import):
            targets = [tuple(a.name.split(".")[1:]) for a in node.names if a.name.startswith("self_learning.")]
        for target in targets:
            room = _room(target)
            if room is not None:
                yield node.lineno, room


def test_imports_run_one_way_between_the_rooms():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(path.relative_to(PACKAGE).with_suffix("").parts)
        if room is None:
            continue
        assert room != "unknown", f"{path.relative_to(PACKAGE)}: no room; add it to ROOMS, AIRFLOW_LAYER or REEXPORTS"
        for line, target in _imported_rooms(path):
            assert target != "unknown", f"{path.relative_to(PACKAGE)}:{line} imports a module of no room"
            if ROOMS[target] > ROOMS[room]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({room}) imports {target}")
    assert not wrong, "\n".join(wrong)


def test_dag_files_import_only_the_airflow_layer():
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("self_learning."):
                room = _room(tuple(node.module.split(".")[1:]))
                assert room == "airflow", f"{path.name}:{node.lineno} imports {node.module} ({room})"


def test_no_module_over_700_lines_and_no_class_over_400():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        assert text.count("\n") <= 700, f"{path.relative_to(PACKAGE)}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 400, f"{path.relative_to(PACKAGE)}: class {node.name} has {length} lines"


def test_statistics_do_no_io_and_load_no_airflow():
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False,
                            cwd=ROOT / "plugins", timeout=120)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe == {"events": [], "airflow": []}


def test_serving_side_modules_load_no_airflow():
    """Serving code reads the registry and A/B tests, and runs the loop's functions, without Airflow."""
    code = ("import sys, json; import self_learning.store, self_learning.lifecycle; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            cwd=ROOT / "plugins", timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_plugin_scan_skips_the_package():
    """Airflow imports every .py under plugins/ under its bare file name; .airflowignore must prevent that."""
    from airflow._shared.module_loading import find_path_from_directory

    assert list(PACKAGE.glob("*.py")), "the package has modules to protect"
    scanned = [Path(p) for p in find_path_from_directory(str(ROOT / "plugins"), ".airflowignore", "glob")]
    assert [p for p in scanned if PACKAGE in p.parents] == []


def test_dag_folder_imports_without_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}


def test_dag_files_import_no_heavy_libraries_at_top_level():
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                heavy = [n for n in names if n.split(".")[0] in {"pandas", "numpy", "scipy", "sklearn"}]
                assert not heavy, f"{path.name} imports {heavy} at parse time"


@pytest.mark.parametrize("module", STATISTICS_MODULES)
def test_statistics_modules_have_a_docstring(module):
    assert ast.get_docstring(ast.parse((PACKAGE / f"{module}.py").read_text()))


def test_dag_parsing_and_page_modules_load_no_plotting_library():
    """matplotlib is imported when a chart is drawn, never when a DAG file is parsed or the pages'
    modules are imported (the scheduler parses the DAG folder every 30 s)."""
    code = ("import sys; from airflow.dag_processing.dagbag import DagBag; "
            f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r}); assert not bag.import_errors, bag.import_errors; "
            "import self_learning.loop.report_html, self_learning.loop.reporting, self_learning.web.app; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            cwd=ROOT / "plugins", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
