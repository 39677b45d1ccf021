"""Old path of the binary COPY codec, now :mod:`self_learning.store.codec`.

Not a copy: this name is bound to the same module object, so code that patches
``pgcopy.encode_rows`` (bench/ingest_bench.py times the database phase that way) patches the
codec the store calls.
"""

import sys

from .store import codec

sys.modules[__name__] = codec
