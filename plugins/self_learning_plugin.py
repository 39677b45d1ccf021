"""Registers the self-learning web app (``self_learning.web.app``) with Airflow: mounted by the API
server under /self-learning, and a "Model health" entry in the UI's navigation that opens its page.

Every Airflow component imports plugin files, task processes included, so the app itself (FastAPI,
the API server's security module: ~1.5 s of imports) is loaded on its first request only.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/self-learning"


class LazyASGIApp:
    """An ASGI app that imports ``module:attribute`` on its first request and hands every request to it."""

    def __init__(self, target: str):
        self.target = target
        self._app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            module, _, attribute = self.target.partition(":")
            self._app = getattr(importlib.import_module(module), attribute)
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return f"LazyASGIApp({self.target!r})"


class SelfLearningPlugin(AirflowPlugin):
    name = "self_learning"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": LazyASGIApp("self_learning.web.app:app"), "url_prefix": URL_PREFIX,
         "name": "Self-learning model health"}]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {"name": "Model health", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "model-health",
         "nav_top_level": True}]
