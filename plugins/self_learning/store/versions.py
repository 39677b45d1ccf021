"""Which ``model_version`` a prediction may name: a version of the model registry, once the model has one.

Issue 20: a prediction under a version nobody registered was stored silently, so a typo (``v8``
for ``v7``) split a model's data into a version of its own that the registry, the A/B test and
the per-version metrics knew nothing about. The rule:

- a model that has registered versions (``register_version``; a retrain, a promotion or an A/B
  test registers them) accepts only those, and ``unversioned`` (the default when serving code
  sends none); any other version is refused naming ``model_version``, the closest registered one
  and how to register it;
- a model with no registered version at all (its owner does not use the registry) accepts any
  version, with a warning logged the first time this store object sees it, so that it is not
  silent; registering a first version turns the check on.

Each store object caches what it has checked: a registered version is looked up once, a version
of a model without a registry is warned about once (a model that starts using the registry in
another process is checked by this one from its next miss of the cache on, e.g. a new version).
"""

from __future__ import annotations

import difflib
import logging

import sqlalchemy as sa

from .tables import DEFAULT_VERSION, model_versions

log = logging.getLogger(__name__)


class ServedVersionsMixin:
    """The ``model_version`` check of prediction writes (single and bulk)."""

    _registered_versions: dict[str, frozenset[str]]
    _unregistered_seen: set[tuple[str, str]]

    def _version_problem(self, conn, model: str, version: str) -> str | None:
        """Why ``model`` can't take predictions of ``version`` (None: it can). Reads the registry
        on ``conn`` only when the caches don't decide."""
        if version == DEFAULT_VERSION or version in self._registered_versions.get(model, ()):
            return None
        if (model, version) in self._unregistered_seen:
            return None
        registered = frozenset(conn.execute(sa.select(model_versions.c.version).where(
            model_versions.c.model == model)).scalars())
        self._registered_versions[model] = registered
        if version in registered:
            return None
        if registered:
            close = difflib.get_close_matches(version, sorted(registered), n=1, cutoff=0.5)
            return (f"{version!r} is not a registered version of {model!r} ("
                    f"{f'did you mean {close[0]!r}? ' if close else ''}registered: {', '.join(sorted(registered))}); "
                    f"register it first: store.register_version({model!r}, {version!r})")
        self._unregistered_seen.add((model, version))
        log.warning("model_version %r of %s is not in the model registry (the model has no registered version, so "
                    "any is accepted); store.register_version(%r, %r) registers it and turns the check on",
                    version, model, model, version)
        return None

    def _check_served_version(self, model: str, version: str) -> None:
        """A single registration's check: ``ValueError`` naming ``model_version``."""
        if version == DEFAULT_VERSION or version in self._registered_versions.get(model, ()) \
                or (model, version) in self._unregistered_seen:
            return
        with self.engine.connect() as conn:
            problem = self._version_problem(conn, model, version)
        if problem:
            raise ValueError(f"model_version: {problem}")

    def _forget_versions(self, model: str) -> None:
        """After a registration of a version of ``model``: the next check re-reads its registry."""
        self._registered_versions.pop(model, None)
        self._unregistered_seen = {(m, v) for m, v in self._unregistered_seen if m != model}
