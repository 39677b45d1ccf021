"""Where the loop may read files it is told about: only strictly under a configured root.

A registry row or a stored report names a URI, and whoever can write those rows could otherwise
make a worker unpickle, or the web app serve, any file the process can read (``/etc/passwd``, a
stranger's ``/tmp/evil.pkl``). ``uri_under_root`` normalises ``..``, percent-escapes,
scheme and host; for local files this also resolves symlinks, so a link under the root that points
outside it is refused too. Shared by the artifact loader (``lifecycle``) and the web app, without
their heavy imports.
"""

from __future__ import annotations

import os
import posixpath
from urllib.parse import quote, unquote, urlsplit


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


def uri_under_root(field: str, uri: str, root: str) -> str:
    """``uri`` normalised, if it names a location strictly below ``root``; else ``ValueError``
    naming ``field``. Both are URLs (``file:///x``, ``s3://bucket/x``) or plain paths (taken as
    ``file://``). ``..`` segments are resolved before the comparison, percent-escapes are
    decoded, and the scheme and host (bucket) must match, so neither ``file:///root/../etc`` nor
    ``file:///root-other/x`` passes for the root ``file:///root``."""
    def normalised(value: str, name: str) -> tuple[str, str, str]:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}: expected a URI or path, got {value!r}")
        if "\x00" in value:
            raise ValueError(f"{name}: contains a NUL character")
        parts = urlsplit(value if "://" in value else f"file://{value}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"{name}: {value!r} is not an absolute location")
        return parts.scheme.lower(), parts.netloc.lower(), posixpath.normpath(path)

    scheme, host, path = normalised(uri, field)
    root_scheme, root_host, root_path = normalised(root, "artifact_root")
    inside = (scheme, host) == (root_scheme, root_host) and path.startswith(root_path.rstrip("/") + "/")
    if not inside:
        raise ValueError(f"{field}: {uri!r} is not under the configured root {root!r}")
    return f"{scheme}://{host}{path}"
