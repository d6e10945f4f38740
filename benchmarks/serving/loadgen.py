"""HTTP load generator for the model servers, standard library only, loopback targets only.

Each worker thread keeps one HTTP/1.1 connection and sends the same POST body until the
request count, the time limit or SIGTERM stops the run. As a script it prints a JSON
summary, which the hot-swap test reads:

    python benchmarks/serving/loadgen.py --url http://127.0.0.1:8000/predict \\
        --body-file body.json --concurrency 2 --max-requests 5000 --max-seconds 60
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlparse

MAX_RECORDED_FAILURES = 20


@dataclass
class LoadResult:
    """Outcome of one load run. Latencies are in seconds, one per completed request."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    connection_errors: int = 0
    failure_samples: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.connection_errors

    @property
    def failed(self) -> int:
        """Requests without a 200 response: connection errors and other statuses."""
        other = sum(count for status, count in self.statuses.items() if status != 200)
        return self.connection_errors + other

    def percentile(self, fraction: float) -> float:
        """Return the latency at ``fraction`` (0.5 for the median), nearest-rank method."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
        return ordered[rank - 1]

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "versions": dict(self.versions),
            "failed": self.failed,
            "connection_errors": self.connection_errors,
            "failure_samples": self.failure_samples,
            "elapsed_seconds": self.elapsed_seconds,
            "p50_ms": self.percentile(0.50) * 1000,
            "p99_ms": self.percentile(0.99) * 1000,
        }


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_loopback(url: str) -> tuple[str, int, str]:
    """Return host, port and path of ``url``; raise ValueError unless it is a loopback address."""
    parsed = urlparse(url)
    if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
        raise ValueError(f"Expected http://HOST:PORT/PATH, found {url!r}")
    addresses = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, parsed.port)}
    if not all(ipaddress.ip_address(address).is_loopback for address in addresses):
        raise ValueError(f"{parsed.hostname} is not a loopback address; load goes to loopback only")
    return parsed.hostname, parsed.port, parsed.path or "/"


def run_load(
    url: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    concurrency: int = 1,
    max_requests: int = 1000,
    max_seconds: float = 60.0,
    stop: threading.Event | None = None,
    read_version: bool = False,
    pause_seconds: float = 0.0,
    timeout: float = 30.0,
) -> LoadResult:
    """Send ``body`` to ``url`` until ``max_requests`` are sent, ``max_seconds`` pass or
    ``stop`` is set. Each worker waits ``pause_seconds`` after each response. A request
    fails on a connection error or a status other than 200."""
    host, port, path = require_loopback(url)
    request_headers = {"Content-Type": "application/json", **(headers or {})}
    stop = stop or threading.Event()
    result = LoadResult()
    lock = threading.Lock()
    issued = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    def take_ticket() -> bool:
        nonlocal issued
        with lock:
            if issued >= max_requests or stop.is_set() or time.perf_counter() > deadline:
                return False
            issued += 1
            return True

    def sample_failure(message: str) -> None:
        with lock:
            if len(result.failure_samples) < MAX_RECORDED_FAILURES:
                result.failure_samples.append(message)

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        while take_ticket():
            sent = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers=request_headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    result.connection_errors += 1
                sample_failure(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
                continue
            latency = time.perf_counter() - sent
            version = None
            if read_version and response.status == 200:
                version = json.loads(payload).get("model_version")
            with lock:
                result.statuses[response.status] += 1
                if response.status == 200:
                    result.latencies.append(latency)
                    if version is not None:
                        result.versions[version] += 1
            if response.status != 200:
                sample_failure(f"HTTP {response.status}: {payload[:300].decode(errors='replace')}")
            if pause_seconds:
                stop.wait(pause_seconds)
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + timeout + 5)
    result.elapsed_seconds = time.perf_counter() - started
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Target, e.g. http://127.0.0.1:8000/predict.")
    parser.add_argument("--body-file", required=True, help="File with the JSON body to send.")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable.")
    parser.add_argument("--concurrency", type=int, default=1, help="Worker threads.")
    parser.add_argument("--max-requests", type=int, default=1000, help="Stop after this many.")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="Stop after this time.")
    parser.add_argument(
        "--pause-seconds", type=float, default=0.0, help="Wait after each response, per worker."
    )
    parser.add_argument(
        "--read-version", action="store_true", help="Count model_version of each response."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    headers = dict(header.split(":", 1) for header in args.header)
    headers = {name.strip(): value.strip() for name, value in headers.items()}
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("started", file=sys.stderr, flush=True)
    result = run_load(
        args.url,
        body,
        headers=headers,
        concurrency=args.concurrency,
        max_requests=args.max_requests,
        max_seconds=args.max_seconds,
        stop=stop,
        read_version=args.read_version,
        pause_seconds=args.pause_seconds,
    )
    print(json.dumps(result.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
