"""PostgreSQL binary COPY encoding from numpy columns (no SQL here; the store owns that).

Why binary: formatting a float as text costs ~0.7 us in Python and parsing it again costs the
server as much, so a 20-feature row spends most of its ingest time in float text. Binary COPY
sends the 8 IEEE bytes. Fixed-width fields are packed for all rows at once with a numpy
structured array; variable-width fields (text, jsonb, nullable values) are pre-encoded once per
distinct value and joined per row.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = b"\xff\xff"
NULL = (-1).to_bytes(4, "big", signed=True)
POSTGRES_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")


def float8_column(values: np.ndarray) -> tuple[np.dtype, np.ndarray]:
    """A non-null float8 field: (structured dtype of the field, its values)."""
    return np.dtype([("len", ">i4"), ("value", ">f8")]), _with_length(values.astype(">f8"), 8)


def timestamptz_column(values: np.ndarray) -> tuple[np.dtype, np.ndarray]:
    """A non-null timestamptz field from numpy datetime64 values in UTC."""
    micros = (values.astype("datetime64[us]") - POSTGRES_EPOCH).astype(np.int64)
    return np.dtype([("len", ">i4"), ("value", ">i8")]), _with_length(micros.astype(">i8"), 8)


def float8_vector_column(matrix: np.ndarray) -> tuple[np.dtype, np.ndarray]:
    """A bytea field per row holding the row of an (n, k) matrix as big-endian float8 bytes."""
    n, k = matrix.shape
    dtype = np.dtype([("len", ">i4"), ("value", ">f8", (k,))])
    packed = np.empty(n, dtype=dtype)
    packed["len"] = 8 * k
    packed["value"] = matrix
    return dtype, packed


def _with_length(values: np.ndarray, length: int) -> np.ndarray:
    packed = np.empty(values.size, dtype=[("len", ">i4"), ("value", values.dtype)])
    packed["len"] = length
    packed["value"] = values
    return packed


def text_pieces(values: Sequence) -> list[bytes]:
    """Length-prefixed UTF-8 per row (None/NaN -> NULL), encoded once per distinct value."""
    return _pieces(values, lambda v: str(v).encode())


def jsonb_pieces(values: Sequence[str | None]) -> list[bytes]:
    """jsonb binary fields (version byte 1 + JSON text) from JSON strings."""
    return _pieces(values, lambda v: b"\x01" + v.encode())


def int4_pieces(values: Sequence) -> list[bytes]:
    """Nullable int4 fields (None/NaN -> NULL)."""
    return _pieces(values, lambda v: int(v).to_bytes(4, "big", signed=True))


def float8_pieces(values: Sequence) -> list[bytes]:
    """Nullable float8 fields (None/NaN -> NULL)."""
    return _pieces(values, lambda v: struct.pack(">d", v))


def float8_array_pieces(values: Sequence) -> list[bytes]:
    """Nullable bytea fields of packed big-endian float8 (a row's own array; None -> NULL): the
    class-probability vectors, whose width is the model's class count when the row was served."""
    if all(value is None for value in values):  # a regression or binary batch
        return [NULL] * len(values)
    pieces = []
    for value in values:
        if value is None:
            pieces.append(NULL)
            continue
        packed = np.asarray(value, dtype=">f8").tobytes()
        pieces.append(len(packed).to_bytes(4, "big") + packed)
    return pieces


def _pieces(values, encode) -> list[bytes]:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    encoded = [len(b).to_bytes(4, "big") + b for b in (encode(u) for u in uniques)]
    encoded.append(NULL)  # code -1
    return [encoded[c] for c in codes.tolist()]


def json_objects(frame: pd.DataFrame) -> list[str]:
    """One JSON object string per row of string columns, missing values left out.

    Built once per distinct combination of values (categorical features have few).
    """
    if frame.shape[1] == 0:
        return ["{}"] * len(frame)
    groups = frame.groupby(list(frame.columns), dropna=False, sort=False).ngroup().to_numpy()
    firsts = pd.Series(np.arange(len(frame))).groupby(groups).first().to_numpy()
    keys = list(frame.columns)
    texts = []
    for row in frame.iloc[firsts].itertuples(index=False, name=None):
        members = {k: v for k, v in zip(keys, row, strict=True) if not pd.isna(v)}
        texts.append(json.dumps(members, ensure_ascii=False, separators=(",", ":")))
    return [texts[g] for g in groups.tolist()]


def encode_rows(fixed: Sequence[tuple[np.dtype, np.ndarray]], variable: Sequence[list[bytes]],
                *, chunk_rows: int = 50_000) -> Iterator[bytes]:
    """Binary COPY stream: header, rows (fixed fields first, then variable ones), trailer.

    The COPY column list must name the fixed fields first, in the same order.
    """
    n = len(fixed[0][1]) if fixed else len(variable[0])
    row_dtype = np.dtype([("count", ">i2")] + [(f"f{i}", dtype) for i, (dtype, _) in enumerate(fixed)])
    yield HEADER
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        block = np.empty(stop - start, dtype=row_dtype)
        block["count"] = len(fixed) + len(variable)
        for i, (_, values) in enumerate(fixed):
            block[f"f{i}"] = values[start:stop]
        raw = memoryview(block.tobytes())
        width = row_dtype.itemsize
        heads = [raw[i * width:(i + 1) * width] for i in range(stop - start)]
        yield b"".join([piece for row in zip(heads, *(v[start:stop] for v in variable), strict=True)
                        for piece in row])
    yield TRAILER
