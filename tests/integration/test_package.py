"""The installable package: the wheel builds, carries what the package reads at run time, and its
client part works without Airflow.

Issue 20: ``pip wheel .`` failed ("Multiple top-level packages discovered") and the client worked
only with ``PYTHONPATH=plugins``. A pip install of the wheel into a fresh venv downloads numpy,
pandas, scipy and scikit-learn (about 90 s here), so the default run checks the wheel itself
instead: built from a copy of the sources, unpacked, and imported from there (dependencies from
this venv, Airflow blocked) to migrate a store, run the README's serving snippet and the console
script. ``-m install`` also installs it into a fresh venv from the package registry.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import ROOT
from support.client import run_client, serving_snippet

UV = Path(sys.executable).with_name("uv")
MIGRATIONS = sorted(p.name for p in (ROOT / "plugins/self_learning/migrations/versions").glob("*.py"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (the build's scratch files stay out of the tree)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT / "plugins" / "self_learning", source / "plugins" / "self_learning",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = [str(UV), "build", "--wheel", "-q", "-o", str(work / "dist"), str(source)] if UV.exists() else \
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(source)]
    result = subprocess.run(build, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = (work / "dist").glob("*.whl")
    return built


def test_the_wheel_carries_the_package_and_its_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names} == {"self_learning", wheel.name.split("-")[0] + "-0.1.0.dist-info"}
    for needed in ("self_learning/store/__init__.py", "self_learning/ab_testing.py", "self_learning/cli.py",
                   "self_learning/__main__.py", "self_learning/migrations/env.py",
                   "self_learning/migrations/script.py.mako", "self_learning/web/app.py"):
        assert needed in names, needed
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("self_learning/migrations/versions/")} >= set(MIGRATIONS)


def test_the_wheel_needs_airflow_only_for_the_airflow_extra(wheel):
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(meta_name))
        entry_points = archive.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    requires = metadata.get_all("Requires-Dist")
    base = [r for r in requires if "extra ==" not in r]
    extra = [r for r in requires if "extra == \"airflow\"" in r]
    assert not [r for r in base if "airflow" in r.lower()], base
    assert {r.split(">")[0].split("[")[0].strip() for r in base} >= {
        "numpy", "pandas", "scipy", "scikit-learn", "sqlalchemy", "alembic", "psycopg"}
    assert any(r.startswith("apache-airflow>=") for r in extra), extra
    assert "self-learning = self_learning.cli:main" in entry_points


def test_the_unpacked_wheel_serves_without_airflow(wheel, tmp_path):
    """Imported from the wheel's files (not plugins/): migrations found, the README snippet runs,
    the console script's migrate and status work; airflow can't be imported."""
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    result = run_client(serving_snippet() + f"""
import self_learning
assert self_learning.__file__.startswith({str(unpacked)!r}), self_learning.__file__
from self_learning.ab_testing import arm_version
assert arm_version("seed", "campaign-42", "v7", "v8", 0.5) in ("v7", "v8")
from self_learning.cli import main
assert main(["migrate", "--db", {url!r}]) == 0
assert main(["status", "roas_predictor", "--db", {url!r}]) == 0
import sys, importlib.metadata as md
owners = md.packages_distributions()
third_party = {{m.split(".")[0] for m in sys.modules}} - set(sys.stdlib_module_names) - {{"self_learning"}}
print("DISTRIBUTIONS", sorted({{d.lower() for m in third_party for d in owners.get(m, ())}}))
""", tmp_path, pythonpath=str(unpacked), env_extra={"FEEDBACK_DB_URL": url})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "schema at revision" in result.stdout
    assert "roas_predictor (regression)" in result.stdout
    # every distribution the client imported is a base requirement or one of theirs: a serving app's
    # `pip install .` gets what the store needs (datasketches was once missed)
    used = set(eval(result.stdout.split("DISTRIBUTIONS", 1)[1].strip().splitlines()[0]))
    with zipfile.ZipFile(wheel) as archive:
        metadata = email.message_from_bytes(archive.read(next(n for n in archive.namelist()
                                                             if n.endswith(".dist-info/METADATA"))))
    base = {r.split(">")[0].split("[")[0].split(";")[0].strip().lower() for r in metadata.get_all("Requires-Dist")
            if "extra ==" not in r}
    assert used, result.stdout[-2000:]
    # (optional imports of the libraries themselves, e.g. psutil or rich when present, are not checked)
    assert {"numpy", "pandas", "scipy", "scikit-learn", "sqlalchemy", "datasketches"} <= used
    assert {"numpy", "pandas", "scipy", "scikit-learn", "sqlalchemy", "datasketches"} <= base


@pytest.mark.install
def test_pip_install_of_the_wheel_into_a_fresh_venv(wheel, tmp_path):
    """The real thing (network, minutes): ``pip install`` the wheel into a new venv without
    Airflow, then the README snippet and ``self-learning status`` there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                             timeout=1800, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    assert subprocess.run([str(python), "-c", "import airflow"], capture_output=True, check=False).returncode != 0
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    snippet = subprocess.run([str(python), "-c", serving_snippet()], cwd=tmp_path, capture_output=True, text=True,
                             env={"FEEDBACK_DB_URL": url, "PATH": "/usr/bin:/bin"}, timeout=300, check=False)
    assert snippet.returncode == 0, snippet.stderr[-3000:]
    status = subprocess.run([str(venv / "bin" / "self-learning"), "status", "roas_predictor", "--db", url],
                            capture_output=True, text=True, timeout=300, check=False)
    assert status.returncode == 0, status.stderr[-3000:]
    assert "roas_predictor (regression)" in status.stdout

