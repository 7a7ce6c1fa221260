"""Load on a real ``skinnet serve``: concurrent clients, latency, nothing lost, and how true Retry-After is.

Starts ``skinnet serve`` (the shipped model unless ``--model``) on a free loopback port, then ``--clients``
threads each upload one bundled ISIC sample image at the same moment. A client answered 503 waits the
``Retry-After`` seconds it was given and tries again, up to ``--retries`` times. Reported: how many ended
with their mask, the p50/p95 latency (first byte sent to final answer, retries included) of all clients and
of those admitted at once, the 503s, and for each 503 the Retry-After against the time the queue it named
actually took to drain (the moment its n-th admitted request, n from the 503's detail, finished after it).

After 3 single requests (the first images carry one-off start-up costs), ``--bursts`` bursts run one after
the other: in the first the server knows only its images' compute times, in the next it has measured how
fast its queue drains.

    python benchmarks/server_load.py [--clients 50] [--queue 32] [--workers 1] [--bursts 2] [--model M]
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from skinnet.data.samples import SAMPLE_IMAGES

WARM_UP = 3
IMAGES = sorted(SAMPLE_IMAGES.glob("*.jpg"))


@dataclass
class Client:
    image: Path
    started: float = 0.0
    finished: float = 0.0
    status: int | None = None
    error: str = ""
    refusals: list[tuple[float, int, int]] = field(default_factory=list)  # (time, Retry-After, queued)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, "-m", "skinnet", "serve", "--port", str(port), "--queue", str(args.queue),
               "--workers", str(args.workers), *(["--model", args.model] if args.model else [])]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start within 120 s")


def run_client(client: Client, url: str, go: threading.Event, completions: list[float], retries: int) -> None:
    data = client.image.read_bytes()
    go.wait()
    client.started = time.monotonic()
    with httpx.Client(base_url=url, timeout=300) as http:
        for _ in range(retries + 1):
            try:
                response = http.post("/api/segment", files={"file": (client.image.name, data, "image/jpeg")})
            except httpx.HTTPError as err:
                client.error = f"{type(err).__name__}: {err}"
                break
            client.status = response.status_code
            if response.status_code != 503:
                break
            now = time.monotonic()
            retry = int(response.headers["retry-after"])
            queued = int(re.match(r"(\d+) images are queued", response.json()["detail"]).group(1))
            client.refusals.append((now, retry, queued))
            time.sleep(retry)
    client.finished = time.monotonic()
    if client.status == 200:
        completions.append(client.finished)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--queue", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--bursts", type=int, default=2, help="bursts of --clients, one after another")
    parser.add_argument("--model")
    args = parser.parse_args()
    port = free_port()
    server = start_server(port, args)
    url = f"http://127.0.0.1:{port}"
    try:
        for image in IMAGES[:WARM_UP]:  # one at a time: the server's first images carry one-off start-up costs
            httpx.post(f"{url}/api/segment", files={"file": (image.name, image.read_bytes())}, timeout=60)
        for burst in range(1, args.bursts + 1):
            clients = [Client(IMAGES[index % len(IMAGES)]) for index in range(args.clients)]
            go, completions = threading.Event(), []
            threads = [threading.Thread(target=run_client, args=(client, url, go, completions, args.retries))
                       for client in clients]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            go.set()
            for thread in threads:
                thread.join()
            print(f"\nburst {burst} of {args.bursts}" + (f" (after {WARM_UP} single requests)" if burst == 1 else
                                                        " (the server has measured its drain rate)"))
            report(clients, sorted(completions), args)
    finally:
        server.terminate()
        server.wait(timeout=30)


def report(clients: list[Client], completions: list[float], args: argparse.Namespace) -> None:
    done = [client for client in clients if client.status == 200]
    latency = [client.finished - client.started for client in done]
    at_once = [client.finished - client.started for client in done if not client.refusals]
    refusals = [refusal for client in clients for refusal in client.refusals]
    print(f"{args.clients} concurrent clients, queue {args.queue}, {args.workers} worker(s), shipped model "
          "unless --model; bundled 256x256 ISIC JPEGs")
    print(f"ended with their mask: {len(done)} of {len(clients)}; lost (error or no 200): "
          f"{len(clients) - len(done)}" + "".join(f"\n  {c.image.name}: {c.status} {c.error}" for c in clients
                                                   if c.status != 200))
    print(f"latency, all clients (retries included): p50 {percentile(latency, 0.5):.2f} s, "
          f"p95 {percentile(latency, 0.95):.2f} s, max {max(latency):.2f} s")
    if at_once:
        print(f"latency, admitted at once ({len(at_once)}): p50 {percentile(at_once, 0.5):.2f} s, "
              f"p95 {percentile(at_once, 0.95):.2f} s")
    refused = sum(bool(client.refusals) for client in clients)
    first_retry = sum(len(client.refusals) == 1 and client.status == 200 for client in clients)
    print(f"503 answers: {len(refusals)} (clients refused at least once: {refused}; admitted on their first "
          f"retry: {first_retry})")
    gaps = []
    for when, retry, queued in refusals:
        later = [moment for moment in completions if moment > when]
        if len(later) >= queued:
            gaps.append((retry, later[queued - 1] - when))
    if gaps:
        ratios = [retry / actual for retry, actual in gaps if actual > 0]
        print(f"Retry-After given: median {statistics.median(r for r, _ in gaps):.0f} s; the queue it named "
              f"drained in: median {statistics.median(a for _, a in gaps):.1f} s; Retry-After / actual drain: "
              f"median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}")


if __name__ == "__main__":
    main()
