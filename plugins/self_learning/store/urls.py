"""Which database URLs the feedback store takes, checked before SQLAlchemy loads a driver.

A ``mysql://`` URL used to fail inside SQLAlchemy with ``No module named 'MySQLdb'``, which names
neither the setting nor what would work; a URL that does not parse failed with SQLAlchemy's
``ArgumentError``. Both are now a ``ValueError`` naming the field (the URL argument, the CLI's
``--db``, the Airflow connection id) and the databases the store runs on. The password is never
repeated in a message.
"""

from __future__ import annotations

import sqlalchemy as sa

SUPPORTED_BACKENDS = ("postgresql", "postgres", "sqlite")
SUPPORTED = "PostgreSQL or SQLite only (postgresql://user@host:5432/feedback or sqlite:////absolute/path/feedback.db)"


def checked_url(url: str | sa.URL, field: str = "url") -> sa.URL:
    """``url`` parsed, if it names PostgreSQL or SQLite; else a ``ValueError`` naming ``field``."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise ValueError(f"{field}: not a database URL; the feedback store runs on {SUPPORTED}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(f"{field}: the feedback store runs on {SUPPORTED}, got a {backend!r} URL "
                         f"({parsed.render_as_string(hide_password=True)})")
    return parsed
