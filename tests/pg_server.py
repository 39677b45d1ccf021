"""Old path of ``support.pg_server`` for the benchmarks (bench/*.py put tests/ on sys.path and import
``pg_server``); new code imports ``support.pg_server``."""

from support.pg_server import ThrowawayPostgres, find_pg_bin

__all__ = ["ThrowawayPostgres", "find_pg_bin"]
