"""Load test of ``xmtc serve`` on loopback: latency percentiles, throughput and errors under concurrency.

Starts ``python -m xmtc serve RUN`` in a subprocess on a free loopback port, waits for ``/health``, sends a
short warm-up, then ``--n`` POST /predict requests (one document each by default) from ``--concurrency``
concurrent keep-alive connections (a minimal asyncio HTTP/1.1 client), and stops the server. Documents come
from a dataset split (``--data``, default: the bundled dataset's test split), cycled in order. Prints a
markdown table and writes the same figures as JSON (``--json``). Everything stays on 127.0.0.1; the client
shares the machine's CPU with the server, so the figures are a lower bound for a dedicated server.

Example (the figures in docs/BENCHMARKS.md, "Serving load test")::

    nice -n 10 python benchmarks/serve_load.py /work/runs/parabel-eurlex \\
        --data /work/shared/data/eurlex57k --n 10000 --concurrency 50 \\
        --json benchmarks/results/serve_load_parabel_eurlex57k.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import dataset_name, machine_info, seeded_rows, with_env  # noqa: E402
from benchmarks.schema import make_row  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_texts(data: str | None, split: str, max_docs: int) -> tuple[list[str], str]:
    """A seeded random sample (seed 0, in file order) of at most ``max_docs`` documents of ``split`` of dataset
    folder ``data`` (default: the bundled dataset)."""
    import warnings

    from xmtc.data import bundled_path, load

    path = Path(data) if data else bundled_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (ds,) = load(path, splits=(split,))
    if ds.texts is None:
        raise SystemExit(f"{path}: split {split!r} has no raw texts")
    rows = seeded_rows(len(ds.texts), max_docs, 0)
    texts = ds.texts if rows is None else [ds.texts[i] for i in rows]
    return texts, f"{path.name}/{split}"


def start_server(run: str, port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "xmtc", "serve", run, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(base: str, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"xmtc serve exited with status {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            r = httpx.get(f"{base}/health", timeout=2)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"xmtc serve did not answer /health within {timeout:.0f} s")


class Connection:
    """A minimal HTTP/1.1 keep-alive client on one asyncio stream (POST JSON, read a Content-Length body).

    Used instead of httpx.AsyncClient, whose connection pool capped this load test at about 70 requests/s on
    the 2-core test machine (the client, not the server, was the bottleneck: see docs/BENCHMARKS.md).
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, close = None, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "connection" and value.strip().lower() == "close":
                close = True
        if length is None:
            raise ConnectionError("response without Content-Length")
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def run_load(base: str, texts: list[str], n: int, concurrency: int, k: int, per_request: int,
                   timeout: float) -> tuple[np.ndarray, dict[str, int], float]:
    """Send ``n`` requests from ``concurrency`` connections (one keep-alive connection per worker).

    Returns:
        (latencies in seconds of the successful requests, error counts by kind, wall seconds).
    """
    url = httpx.URL(base)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(n))

    async def worker() -> None:
        conn = Connection(url.host, url.port)
        for i in counter:
            start = (i * per_request) % len(texts)
            batch = [texts[(start + j) % len(texts)] for j in range(per_request)]
            body = json.dumps({"texts": batch, "k": k}).encode()
            t0 = time.perf_counter()
            try:
                status, data = await asyncio.wait_for(conn.post("/predict", body), timeout)
                ok = status == 200 and len(json.loads(data)["predictions"]) == per_request
                key = "ok" if ok else f"http {status}"
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                key = type(e).__name__
                await conn.close()  # reconnect for the next request
            if key == "ok":
                latencies.append(time.perf_counter() - t0)
            else:
                errors[key] = errors.get(key, 0) + 1
        await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return np.asarray(latencies), errors, time.perf_counter() - t0


def summarise(lat: np.ndarray, errors: dict[str, int], wall: float, args, source: str, health: dict,
              health_after: dict) -> dict:
    ms = lat * 1000
    pct = {f"p{q}": round(float(np.percentile(ms, q)), 1) if len(ms) else None for q in (50, 90, 99)}
    b0, b1 = health.get("batching", {}), health_after.get("batching", {})
    calls = b1.get("model_calls", 0) - b0.get("model_calls", 0)
    served = b1.get("texts", 0) - b0.get("texts", 0)
    return {
        "run": str(args.run), "model": health.get("model"), "n_labels": health.get("n_labels"),
        "documents": source, "requests": args.n, "concurrency": args.concurrency,
        "texts_per_request": args.texts, "k": args.k, "ok": int(len(lat)),
        "errors": int(sum(errors.values())), "error_kinds": errors,
        "wall_s": round(wall, 2), "throughput_rps": round(len(lat) / wall, 1) if wall else None,
        "throughput_texts_per_s": round(len(lat) * args.texts / wall, 1) if wall else None,
        "latency_ms": {**pct, "mean": round(float(ms.mean()), 1) if len(ms) else None,
                       "max": round(float(ms.max()), 1) if len(ms) else None},
        "model_calls": calls, "mean_texts_per_model_call": round(served / calls, 2) if calls else None,
        "model_busy_s": round(b1.get("busy_seconds", 0) - b0.get("busy_seconds", 0), 2),
        "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
                   f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def to_result(s: dict, data: str | None) -> dict:
    """The summary as a result file (:mod:`benchmarks.schema`): one row without P@k (a load test measures no
    quality), the serving figures at the top level, the machine as :func:`benchmarks.common.machine_info`."""
    s = dict(s)
    row = make_row(f"{s['model']} (xmtc serve, concurrency {s['concurrency']})", "single",
                   dataset_name(data) if data else s["documents"].split("/")[0], n_labels=s["n_labels"],
                   requests=s["requests"], concurrency=s["concurrency"],
                   throughput_docs_s=s["throughput_texts_per_s"], latency_p50_ms=s["latency_ms"]["p50"],
                   latency_p99_ms=s["latency_ms"]["p99"], errors=s["errors"])
    return {"command": s.pop("command"), "date": s.pop("date"),
            "machine": {"description": s.pop("machine"), **machine_info()}, "rows": [row], **s}


def markdown(s: dict) -> str:
    lat = s["latency_ms"]
    rows = [("model", f"{s['model']} ({s['n_labels']} labels), {s['run']}"), ("documents", s["documents"]),
            ("requests x texts", f"{s['requests']} x {s['texts_per_request']} (k={s['k']}), "
                                 f"{s['concurrency']} concurrent"),
            ("ok / errors", f"{s['ok']} / {s['errors']} {s['error_kinds'] or ''}".strip()),
            ("wall time", f"{s['wall_s']} s"),
            ("throughput", f"{s['throughput_rps']} requests/s ({s['throughput_texts_per_s']} documents/s)"),
            ("latency p50 / p90 / p99", f"{lat['p50']} / {lat['p90']} / {lat['p99']} ms"),
            ("latency mean / max", f"{lat['mean']} / {lat['max']} ms"),
            ("model calls", f"{s['model_calls']} (mean {s['mean_texts_per_model_call']} documents per call; "
                            f"model busy {s['model_busy_s']} s)"),
            ("machine", s["machine"]), ("date", s["date"])]
    return "| | |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run folder from xmtc train (or a model folder)")
    p.add_argument("--data", help="dataset folder whose documents are sent (default: the bundled dataset)")
    p.add_argument("--split", default="test", help="split of --data (default: test)")
    p.add_argument("--n", type=int, default=10_000, help="requests to send (default 10000)")
    p.add_argument("--concurrency", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--texts", type=int, default=1, help="documents per request (default 1)")
    p.add_argument("--k", type=int, default=5, help="labels per document (default 5)")
    p.add_argument("--max-docs", type=int, default=2000, help="distinct documents sent (a seeded sample, cycled)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it is an error")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--server-arg", action="append", default=[], help="extra argument for xmtc serve "
                   "(repeatable), e.g. --server-arg=--batch-wait-ms=2")
    args = p.parse_args(argv)
    if min(args.n, args.concurrency, args.texts, args.k, args.max_docs) < 1:
        p.error("--n, --concurrency, --texts, --k and --max-docs must be positive")

    texts, source = load_texts(args.data, args.split, args.max_docs)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(args.run, port, args.server_arg)
    try:
        wait_ready(base, proc, timeout=600)
        asyncio.run(run_load(base, texts, min(20, args.n), min(4, args.concurrency), args.k, args.texts,
                             args.timeout))  # warm-up
        health = httpx.get(f"{base}/health").json()
        lat, errors, wall = asyncio.run(run_load(base, texts, args.n, args.concurrency, args.k, args.texts,
                                                 args.timeout))
        health_after = httpx.get(f"{base}/health").json()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    summary = summarise(lat, errors, wall, args, source, health, health_after)
    given = sys.argv[1:] if argv is None else argv
    summary["command"] = with_env("python benchmarks/serve_load.py " + shlex.join(given))
    print(markdown(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_result(summary, args.data), indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
