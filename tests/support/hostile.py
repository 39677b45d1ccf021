"""Hostile artifacts for the loading tests: a pickle that leaves a marker file when it is loaded."""

from __future__ import annotations

import pickle
from pathlib import Path


class RunsCodeWhenUnpickled:
    """Unpickling calls ``open(marker, "w")``: the marker file appears if the pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_evil_pickle(path: Path, marker: Path) -> str:
    """Write the hostile pickle at ``path``; its ``file://`` URI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(RunsCodeWhenUnpickled(marker)))
    return f"file://{path}"
