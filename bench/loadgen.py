"""The harness's own load generator, used when ``wrk`` is not installed (or with ``--loadgen python``).

    python bench/loadgen.py --port P --path /x --body-file F --content-type T [--header 'K: V']
                            --connections N --duration S [--max-requests M] [--timeout S]

A closed loop like wrk's: N keep-alive HTTP/1.1 connections to 127.0.0.1, each sending the
same request again as soon as the answer is in. It stops after ``--duration`` seconds, after
``--max-requests`` requests, or on SIGINT/SIGTERM, and prints one JSON line (the same fields the
harness reads from wrk): requests, duration_us, errors by kind, latency percentiles in µs.
It only ever connects to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

HOST = "127.0.0.1"


class Stats:
    def __init__(self):
        self.latencies_us: list[int] = []
        self.requests = 0
        self.bytes = 0
        self.errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
        self.statuses: dict[int, int] = {}


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """(status, body length, keep-alive) of one response; the body is read and discarded."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("closed")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked, keep = None, False, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.lower() == b"close":
            keep = False
    size = 0
    if chunked:
        while True:
            n = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(n + 2)
            size += n
            if n == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
        size = length
    else:  # no length: the body runs to the end of the connection
        size = len(await reader.read())
        keep = False
    return status, size, keep


async def _connection(port: int, request: bytes, stats: Stats, stop: asyncio.Event, deadline: float,
                      budget: list[int], timeout: float) -> None:
    reader = writer = None
    while not stop.is_set() and time.monotonic() < deadline and budget[0] > 0:
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
            except (OSError, asyncio.TimeoutError):
                stats.errors["connect"] += 1
                await asyncio.sleep(0.05)
                continue
        budget[0] -= 1
        t0 = time.perf_counter()
        try:
            writer.write(request)
            await writer.drain()
        except OSError:
            stats.errors["write"] += 1
            writer.close()
            writer = None
            continue
        try:
            status, size, keep = await asyncio.wait_for(_read_response(reader), timeout)
        except asyncio.TimeoutError:
            stats.errors["timeout"] += 1
            writer.close()
            writer = None
            continue
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            stats.errors["read"] += 1
            writer.close()
            writer = None
            continue
        stats.latencies_us.append(int((time.perf_counter() - t0) * 1e6))
        stats.requests += 1
        stats.bytes += size
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if status > 399:
            stats.errors["status"] += 1
        if not keep:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def percentile(ordered: list[int], q: float) -> int:
    if not ordered:
        return 0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args) -> dict:
    body = open(args.body_file, "rb").read()
    head = [f"POST {args.path} HTTP/1.1", f"Host: {HOST}:{args.port}", f"Content-Type: {args.content_type}",
            f"Content-Length: {len(body)}", "Connection: keep-alive"] + list(args.header)
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    stats = Stats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    deadline = started + args.duration
    budget = [args.max_requests]
    await asyncio.gather(*(_connection(args.port, request, stats, stop, deadline, budget, args.timeout)
                           for _ in range(args.connections)))
    elapsed = time.monotonic() - started
    ordered = sorted(stats.latencies_us)
    return {"requests": stats.requests, "duration_us": int(elapsed * 1e6), "bytes": stats.bytes,
            **stats.errors, "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
            "p50_us": percentile(ordered, 0.50), "p90_us": percentile(ordered, 0.90),
            "p99_us": percentile(ordered, 0.99), "max_us": ordered[-1] if ordered else 0,
            "mean_us": sum(ordered) / len(ordered) if ordered else 0.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--content-type", default="application/json")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--max-requests", type=int, default=10_000_000)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    result = asyncio.run(run(args))
    sys.stdout.write("LOADJSON " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
