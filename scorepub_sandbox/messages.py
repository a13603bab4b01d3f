"""The wire between the web process and a worker: framed messages over a socketpair.

A frame is ``u32 header length | u32 blob count | header (JSON) | (u64 length | bytes) * n``.
The header is a JSON object; blobs carry bulk data: numeric columns as raw little-endian
NumPy buffers, text columns as JSON arrays, PNG files as they are. Nothing is pickled, and
every length is checked against a cap before it is read, so a misbehaving worker can neither
run code in the parent nor make it allocate without bound. (NumPy and pandas are imported only
by the table functions: the template's zygote uses the frames before it may start threads.)
"""
from __future__ import annotations

import enum
import socket
import struct
import time

import orjson

_HEAD = struct.Struct("<II")
_BLOB = struct.Struct("<Q")
MAX_HEADER = 16 * 1024 * 1024
_TEXT = {str, type(None)}
_RAW = {"integer": "<i8", "double": "<f8", "boolean": "?", "datetime": "<i8"}


class ErrorKind(str, enum.Enum):
    """Why a worker's call (``result.error.kind``) or a template's load (``load_failed.kind``) failed."""

    SCRIPT = "script"  # the script raised
    RETURN = "return"  # it returned something that is not a table
    MEMORY = "memory"  # it ran out of its memory limit
    OUTPUT_TOO_LARGE = "output_too_large"
    SANDBOX = "sandbox"  # a sandbox layer could not be set up (not the script's fault)
    PREPARE = "prepare"  # the artifact could not be prepared (not the script's fault)


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed frame (or closed the channel)."""


class FrameTooLarge(ProtocolError):
    def __init__(self, size: int, cap: int):
        super().__init__(f"{size} bytes is over the limit of {cap} bytes")
        self.size, self.cap = size, cap


def _until(sock: socket.socket, deadline: float | None) -> None:
    """One absolute deadline for a whole frame: a peer trickling bytes cannot stretch it."""
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        sock.settimeout(left)


def send(sock: socket.socket, header: dict, blobs=(), deadline: float | None = None) -> None:
    head = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    parts = [_HEAD.pack(len(head), len(blobs)), head]
    for blob in blobs:
        parts.append(_BLOB.pack(len(blob)))
        parts.append(blob)
    if sum(map(len, parts)) < (1 << 20):
        parts = [b"".join(parts)]
    for part in parts:  # large buffers go out as they are, without a joined copy
        view = memoryview(part).cast("B")
        while view:
            _until(sock, deadline)
            view = view[sock.send(view):]


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        _until(sock, deadline)
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ProtocolError("channel closed")
        got += n
    return buf


def recv(sock: socket.socket, max_bytes: int, deadline: float | None = None) -> tuple[dict, list[bytearray]]:
    """Read one frame by ``deadline`` (monotonic seconds); ``max_bytes`` caps its blobs."""
    head_len, n_blobs = _HEAD.unpack(_recv_exact(sock, _HEAD.size, deadline))
    if head_len > MAX_HEADER:
        raise FrameTooLarge(head_len, MAX_HEADER)
    if n_blobs > 100_000:
        raise ProtocolError(f"{n_blobs} blobs in one frame")
    try:
        header = orjson.loads(_recv_exact(sock, head_len, deadline))
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not an object")
    blobs, total = [], 0
    for _ in range(n_blobs):
        (size,) = _BLOB.unpack(_recv_exact(sock, _BLOB.size, deadline))
        total += size
        if total > max_bytes:
            raise FrameTooLarge(total, max_bytes)
        blobs.append(_recv_exact(sock, size, deadline))
    return header, blobs


# -- tables ------------------------------------------------------------------------------

def encode_table(table, blobs: list) -> dict:
    """Describe ``table`` in a header dict, appending its buffers to ``blobs``."""
    import numpy as np

    cols = []
    for c in table.columns:
        entry = {"name": c.name, "type": c.type, "nullable": c.nullable, "label": c.label}
        if c.type in _RAW:
            entry["data"] = len(blobs)
            blobs.append(np.ascontiguousarray(c.data, dtype=_RAW[c.type]).data.cast("B"))
            if c.mask is not None:
                entry["mask"] = len(blobs)
                blobs.append(np.ascontiguousarray(c.mask, dtype="?").data.cast("B"))
        else:
            entry["data"] = len(blobs)
            values = c.data.tolist()
            try:
                blobs.append(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY))
            except orjson.JSONEncodeError:  # lone surrogates, ints beyond 64 bits: as text
                blobs.append(orjson.dumps([text_safe(v) for v in values], option=orjson.OPT_SERIALIZE_NUMPY))
        cols.append(entry)
    return {"n_rows": table.n_rows, "columns": cols}


def text_safe(value):
    """What JSON can carry: strings as valid UTF-8 (a lone surrogate in a cell or an exception
    message must not kill the worker), integers beyond 64 bits as text, containers walked."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict):
        return {k: text_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [text_safe(v) for v in value]
    return value


def decode_table(desc, blobs: list):
    """Rebuild a table from a header entry; raise ProtocolError on anything inconsistent."""
    import numpy as np

    from .table import Column, Table

    try:
        n = desc["n_rows"]
        if not isinstance(n, int) or n < 0:
            raise ProtocolError("bad row count")
        columns = []
        for entry in desc["columns"]:
            name, type_ = entry["name"], entry["type"]
            if not isinstance(name, str):
                raise ProtocolError("column name is not a string")
            if type_ in _RAW:
                data = np.frombuffer(blobs[entry["data"]], dtype=_RAW[type_])
                mask = np.frombuffer(blobs[entry["mask"]], dtype="?") if entry.get("mask") is not None else None
                if mask is not None and len(mask) != n:
                    raise ProtocolError(f"column {name!r}: mask length")
            elif type_ in ("string", "json"):
                values = orjson.loads(blobs[entry["data"]])
                if not isinstance(values, list):
                    raise ProtocolError(f"column {name!r}: not a list")
                data = np.empty(len(values), dtype=object)
                data[:] = values
                mask = None
                if type_ == "string" and not set(map(type, values)) <= _TEXT:
                    raise ProtocolError(f"column {name!r}: not all strings")
            else:
                raise ProtocolError(f"column {name!r}: unknown type {type_!r}")
            if len(data) != n:
                raise ProtocolError(f"column {name!r}: {len(data)} values for {n} rows")
            label = entry.get("label")
            columns.append(Column(name, type_, data, mask, bool(entry.get("nullable")),
                                  label if isinstance(label, str) else None))
        return Table(columns, n)
    except (KeyError, IndexError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise ProtocolError(f"malformed table ({exc})") from None
