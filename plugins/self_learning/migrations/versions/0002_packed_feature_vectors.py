"""Numeric feature vectors as packed big-endian float8 bytes (bytea) on PostgreSQL.

Why: sending a float8[] costs the server a palloc and a function call per element - 3.9 s of a
1M-row x 45-feature window read, against 0.3 s for the same bytes as one bytea (measured with
bench/daily_bench.py data). NaN marks a missing value. SQLite keeps its JSON list.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PACK = """
CREATE FUNCTION self_learning_pack_float8(values_ float8[]) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg(float8send(coalesce(v, 'NaN'::float8)), ''::bytea ORDER BY i), ''::bytea)
    FROM unnest(values_) WITH ORDINALITY AS u(v, i)
$$
"""


def upgrade() -> None:
    _rewrite_vectors(PACK, "self_learning_pack_float8", "bytea")


def _rewrite_vectors(create_function: str, function: str, target_type: str) -> None:
    """Rewrite every stored vector through a temporary SQL function (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(create_function)
    op.execute(f"ALTER TABLE predictions ALTER COLUMN num_features TYPE {target_type} USING {function}(num_features)")
    op.execute(f"DROP FUNCTION {function}")


# The inverse, exact for every float8: the 64 bits as a bigint, split into sign, exponent and
# mantissa, and rebuilt with exact power-of-two arithmetic (subnormals included).
UNPACK = """
CREATE FUNCTION self_learning_unpack_float8(packed bytea) RETURNS float8[] LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(
        CASE WHEN e = 2047 THEN CASE WHEN m <> 0 THEN 'NaN'::float8
                                     WHEN negative THEN '-Infinity'::float8 ELSE 'Infinity'::float8 END
             WHEN e = 0 THEN (CASE WHEN negative THEN -1 ELSE 1 END) * m::float8 * power(2::float8, -1074)
             ELSE (CASE WHEN negative THEN -1 ELSE 1 END) * (1 + m::float8 / 4503599627370496)
                  * power(2::float8, e - 1023)
        END ORDER BY i), '{}')
    FROM (SELECT i, bits < 0 AS negative, (bits >> 52) & 2047 AS e, bits & 4503599627370495 AS m
          FROM (SELECT i, ('x' || encode(substring(packed FROM 8 * i + 1 FOR 8), 'hex'))::bit(64)::bigint AS bits
                FROM generate_series(0, length(packed) / 8 - 1) AS i) AS words) AS parts
$$
"""


def downgrade() -> None:
    _rewrite_vectors(UNPACK, "self_learning_unpack_float8", "float8[]")
