"""``python -m self_learning``: the ``self-learning`` command (``self_learning.cli``)."""

import sys

from .cli import main

sys.exit(main())
