"""Moved to ``self_learning.web.metrics``; the old path is the same module object (private names included)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module(".web.metrics", __package__)
