"""Where the loop may read files it is told about: only strictly under a configured root.

A registry row or a stored report names a URI, and whoever can write those rows could otherwise
make a worker unpickle, or the web app serve, any file the process can read (``/etc/passwd``, a
stranger's ``/tmp/evil.pkl``). ``validation.uri_under_root`` normalises ``..``, percent-escapes,
scheme and host; for local files this also resolves symlinks, so a link under the root that points
outside it is refused too. Shared by the artifact loader (``lifecycle``) and the web app, without
their heavy imports.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from .validation import uri_under_root


def resolved_under_root(field: str, uri: str, root: str) -> str:
    """``uri`` normalised (a local file as ``file://`` + its real path), if it lies strictly under
    ``root``; ``ValueError`` naming ``field`` otherwise. Object stores (``s3://``...) have no
    symlinks: their normalised URI is checked as it is."""
    location = uri_under_root(field, uri, root)
    if not location.startswith("file://"):
        return location
    # the root as uri_under_root normalises it (scheme, escapes, ``..``), then both without symlinks
    root_path = uri_under_root(field, f"{root.rstrip('/')}/_", root).removeprefix("file://")[:-2]
    resolved = os.path.realpath(location.removeprefix("file://"))
    uri_under_root(field, f"file://{quote(resolved)}", f"file://{quote(os.path.realpath(root_path))}")
    return f"file://{resolved}"
