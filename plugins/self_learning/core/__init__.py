"""The pure core: types, validation and every statistic of the loop.

Nothing here does I/O or imports Airflow, SQLAlchemy or the store: each function takes numbers
or frames and returns a result dataclass, so the whole core runs in a unit test without a
database. The store, the loop and the Airflow layer import from here, never the other way.
"""
