"""Moved to ``self_learning.loop.report_html``; the old path is the same module object (private names included)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module(".loop.report_html", __package__)
