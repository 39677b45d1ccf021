"""Moved to ``self_learning.demo.synthetic``; the old path is the same module object (private names included)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module(".demo.synthetic", __package__)
