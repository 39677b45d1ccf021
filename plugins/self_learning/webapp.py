"""Moved to ``self_learning.web.app``; the old path is the same module object (private names included)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module(".web.app", __package__)
