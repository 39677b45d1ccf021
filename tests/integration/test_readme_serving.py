"""The README's serving snippet runs as written, on the client alone (no Airflow importable).

Issue 20: the snippet used undefined ``frame``, ``outcomes_frame``, ``start`` and ``end``, and
nothing ran it. The block after the ``serving-snippet`` marker is executed verbatim in a fresh
interpreter whose import system refuses ``airflow``, against a throwaway SQLite store, twice (a
serving app restarts: the second run must not fail on what the first stored).
"""

from __future__ import annotations

from support import ROOT
from support.client import run_client, serving_snippet


def test_readme_serving_snippet_runs_verbatim_without_airflow(tmp_path):
    snippet = serving_snippet()
    database = tmp_path / "feedback.db"
    for attempt in (1, 2):  # a restart of the serving app runs it again on the same store
        result = run_client(snippet, tmp_path, pythonpath=str(ROOT / "plugins"),
                            env_extra={"FEEDBACK_DB_URL": f"sqlite:///{database}"})
        assert result.returncode == 0, f"run {attempt}:\n{result.stderr[-3000:]}"
    printed = result.stdout
    assert "v7" in printed and "tiktok" in printed and "310.0" in printed, printed
    assert database.exists()


def test_readme_snippet_defines_every_name_it_uses():
    """No name is used before the snippet binds it (the old snippet's ``frame``, ``start``, ``end``)."""
    import ast
    import builtins

    tree = ast.parse(serving_snippet())
    bound = set(dir(builtins))
    for node in tree.body:
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert used <= bound, f"line {node.lineno}: {sorted(used - bound)} used before it is defined"
        for target in ast.walk(node):
            if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                bound.add(target.id)
            elif isinstance(target, ast.alias):
                bound.add((target.asname or target.name).split(".")[0])
