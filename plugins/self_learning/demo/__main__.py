"""``python -m self_learning.demo``: see ``self_learning.demo.run``."""

import sys

from .run import main

sys.exit(main())
