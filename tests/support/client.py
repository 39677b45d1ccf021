"""Running code as a client install would: a fresh interpreter whose import system refuses
``airflow``; and the README's serving snippet (the block after its ``serving-snippet`` marker)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from support import ROOT

MARKER = "<!-- serving-snippet"
# Prepended to the snippet: any import of airflow (or a submodule) fails, as on a client install.
BLOCK_AIRFLOW = """\
import importlib.abc, sys

class _NoAirflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"{name}: Airflow is not installed on a client")
        return None

sys.meta_path.insert(0, _NoAirflow())
"""
AIRFLOW_CHECK = """
assert not [m for m in sys.modules if m.split(".")[0] == "airflow"], "the client imported airflow"
"""


def serving_snippet() -> str:
    """The python block that follows the marker comment in README.md."""
    text = (ROOT / "README.md").read_text()
    assert text.count(MARKER) == 1, "README.md: one serving-snippet marker"
    block = re.match(r"[^\n]*\n```python\n(.*?)\n```", text[text.index(MARKER):], re.DOTALL)
    assert block, "README.md: the serving-snippet marker is followed by a ```python block"
    return block.group(1)


def run_client(code: str, tmp_path, *, pythonpath: str, env_extra: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter with airflow blocked, cwd ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
    env |= {"PYTHONPATH": pythonpath, **(env_extra or {})}
    script = tmp_path / "client.py"
    script.write_text(BLOCK_AIRFLOW + code + AIRFLOW_CHECK)
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
