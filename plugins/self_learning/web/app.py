"""The plugin's web app, mounted by the Airflow API server under ``/self-learning``.

- ``/``: the "Model health" page (the UI's navigation opens it in an iframe): per model the champion,
  the baseline its checks compare against (dates, source, pinned or provisional, how to change it),
  latest metrics with their daily trend, drift and performance degradation with each flagged feature
  or metric "since" its change started, open alerts, running A/B tests.
- ``/health.json``: the same snapshot as JSON.
- ``/reports/{kind}``: the latest stored learning report page of a kind (weekly, daily), served only
  from under the report root (the ``self_learning_report_root`` Variable, else
  ``$AIRFLOW_HOME/self_learning/reports``, read on first use) and only as an ``.html`` file; any other
  stored location (``file:///etc/passwd``, ``..``, a symlink out of the root) is a 404. The page
  goes out with a Content-Security-Policy that allows no script, no request and no framing outside
  Airflow: the reports are self-contained HTML with inline styles and SVG, so nothing is lost.
- ``/metrics``: the snapshot in the Prometheus text format (see ``metrics``).

Airflow does not authenticate plugin apps by itself: every route requires an Airflow user allowed to
see plugins (the UI's session cookie or an API token). ``/metrics`` also takes the static bearer
token of ``[self_learning] metrics_token`` (e.g. ``AIRFLOW__SELF_LEARNING__METRICS_TOKEN``), since a
Prometheus scrape job cannot renew an expiring Airflow token. Everything is read from the feedback
store (connection ``feedback_db``); nothing is computed at request time.
"""

from __future__ import annotations

import functools
import hmac
import logging
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import get_user, requires_access_view
from airflow.configuration import conf
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from ..hooks import FeedbackStoreHook
from ..store import FeedbackStore

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REPORT_KINDS = ("weekly", "daily")
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
REPORT_SUFFIX = ".html"

log = logging.getLogger(__name__)

viewer = Depends(requires_access_view(AccessView.PLUGINS))


async def metrics_reader(request: Request) -> None:
    """The scrape token when one is configured and sent, else an Airflow user as for the page."""
    token = conf.get("self_learning", "metrics_token", fallback="")
    header = request.headers.get("authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return
    scheme, _, credentials = header.partition(" ")
    bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials) if credentials else None
    requires_access_view(AccessView.PLUGINS)(request, await get_user(request, None, bearer))


@functools.lru_cache(maxsize=4)
def _store(url: str) -> FeedbackStore:
    return FeedbackStore.from_url(url)  # one engine (and connection pool) per store


def feedback_store() -> FeedbackStore:
    url = FeedbackStoreHook().store_url()  # looked up per request: a changed connection takes effect
    return _store(url if isinstance(url, str) else url.render_as_string(hide_password=False))


Store = Annotated[FeedbackStore, Depends(feedback_store)]


def health_snapshot(store: Store) -> dict[str, Any]:
    from ..loop.reporting import model_health

    return model_health(store, report_kinds=REPORT_KINDS)


Health = Annotated[dict[str, Any], Depends(health_snapshot)]


pages = APIRouter(dependencies=[viewer])


@pages.get("/", response_class=HTMLResponse)
def model_health_page(request: Request, health: Health) -> HTMLResponse:
    from ..loop.report_html import render_model_health

    return HTMLResponse(render_model_health(health, base_url=request.scope.get("root_path", "")))


@pages.get("/health.json")
def model_health_json(health: Health) -> JSONResponse:
    return JSONResponse(health)


@functools.cache
def report_root() -> tuple[str, str | None]:
    """(root URI, connection id) of the report storage, as the report operators resolve it; read
    once per process, on first use (a changed root needs an api-server restart)."""
    from airflow.sdk import Variable

    from ..operators.common import REPORT_ROOT_VARIABLE, storage_path

    conn_id = Variable.get("self_learning_report_conn_id", default=None) or None
    return str(storage_path(None, REPORT_ROOT_VARIABLE, "reports", conn_id)), conn_id


@pages.get("/reports/{kind}", response_class=HTMLResponse)
def latest_report(kind: str, store: Store) -> Response:
    from airflow.sdk import ObjectStoragePath

    from ..loop.locations import resolved_under_root

    if kind not in REPORT_KINDS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"kind: one of {', '.join(REPORT_KINDS)}, not {kind!r}")
    row = store.latest_learning_report(kind)
    if row is None or not row["artifact_uri"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} learning report stored yet")
    root, conn_id = report_root()
    try:
        location = resolved_under_root("artifact_uri", row["artifact_uri"], root)
        if not location.endswith(REPORT_SUFFIX):
            raise ValueError(f"artifact_uri: {row['artifact_uri']!r} is not an {REPORT_SUFFIX} page")
        page = ObjectStoragePath(location, conn_id=conn_id).read_bytes()
    except ValueError as error:  # the stored location is not a report page: say nothing about the file
        log.warning("refused to serve the stored %s report: %s", kind, error)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} learning report page under the report root") \
            from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the {kind} report page is gone from its storage") from None
    return Response(page, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)


def create_app() -> FastAPI:
    app = FastAPI(title="Self-learning model health", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(pages)

    @app.get("/metrics", dependencies=[Depends(metrics_reader)])
    def prometheus_metrics(health: Health) -> Response:
        from .metrics import exposition

        return Response(exposition(health), media_type=PROMETHEUS_CONTENT_TYPE)

    return app


app = create_app()
