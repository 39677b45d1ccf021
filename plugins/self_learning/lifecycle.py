"""Moved to ``self_learning.loop.lifecycle``; the old path is the same module object (private names included)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module(".loop.lifecycle", __package__)
