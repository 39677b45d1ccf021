"""Shared helpers of the test suite: servers (PostgreSQL, Airflow processes, Chromium), scenarios,
store fixtures' helpers. Test modules import from here, never from one another."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
