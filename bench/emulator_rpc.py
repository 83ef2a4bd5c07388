"""Emulator RPC throughput with a large fleet loaded.

Loads N instances (default 10,000) into a fresh emulator, then measures requests per second for
a mix of read calls (DescribeInstances by tag with pages of 100, DescribeInstances by ids,
DescribeImages, DescribeRegions) in two ways:

* ``server``: classic (HMAC-SHA1) signed GET requests sent by an aiohttp client with C concurrent
  connections: the emulator's own capacity (client cost is small);
* ``sdk``: the official ECS SDK from T threads: what an SDK user sees (the SDK's signing
  and parsing cost the client process CPU too, on the same 2 cores).

Every request carries its own ``SignatureNonce`` and a current ``Timestamp``: the emulator refuses a
nonce used in the last 15 minutes (``SignatureNonceUsed``) and a timestamp more than 15 minutes off the
real clock (``InvalidTimeStamp.Expired``), as the real cloud does. Signing is not free (about 0.2 ms per
URL in Python, more on a busy machine: some 5% of the CPU the emulator spends on a request of this mix, taken
from the same 2 cores), so the server mode keeps it out of the measurement: the run is cut into windows of ``--window`` seconds and, *before* each
window and outside its clock, the client signs a batch of URLs with fresh nonces and timestamps (sized
from the rate measured so far, with a margin). During the window the connections only send those URLs; a
window ends at its deadline or when its batch runs out, whichever comes first, and the rate is the
requests answered over the summed window durations. No URL is sent twice and none is older than its
window plus the signing time, far inside the 15 minutes. (Signing in a pool of processes while measuring
was the alternative; on 2 cores it would take CPU from the server, so it was not chosen.) An unmeasured
warm-up batch opens the connections and gives the first rate estimate.

The emulator process's CPU seconds during the windows are read with psutil: requests per emulator
CPU-second is the steadier figure when other work shares the machine.

Every answer is checked: non-2xx answers (and connection errors) are counted by status and error code
and reported; if more than ``--max-error-rate`` (default 0.1%) of the answers of either mode are errors,
the run prints why and exits with status 1, so a benchmark that measures error answers cannot pass
unnoticed.

Usage: python -m bench.emulator_rpc [--instances 10000] [--seconds 10] [--concurrency 16] [--window 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import math
import os
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from emulator.control import EmulatorProcess

REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen"]
WARMUP_REQUESTS = 400
MAX_WINDOW = 120.0      # seconds; a pre-signed URL must be sent well within the 15-minute timestamp window
BATCH_MARGIN = 1.3      # a window's batch is this much larger than the rate measured so far predicts


def signed_url(base: str, ak: str, secret: str, params: dict[str, str]) -> str:
    """A classic RPC (v1, HMAC-SHA1) signed GET URL, as aliyun-python-sdk-core builds it: a new
    ``SignatureNonce`` and the current ``Timestamp`` on every call (send it once, within 15 minutes)."""
    full = {"Format": "JSON", "Version": "2014-05-26", "AccessKeyId": ak, "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex,
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **params}
    canonical = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(full.items()))
    to_sign = f"GET&{quote('/', safe='~')}&{quote(canonical, safe='~')}"
    sig = base64.b64encode(hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    return f"{base}/?{canonical}&Signature={quote(sig, safe='~')}"


def load_fleet(emu: EmulatorProcess, instances: int) -> float:
    per_region = instances // len(REGIONS)
    spec = {"instances": [{"region": r, "name": "bench", "count": per_region, "status": "Running",
                           "tags": {"backup": "daily", "team": f"t{i % 10}"}} for i, r in enumerate(REGIONS)]}
    started = time.perf_counter()
    emu.admin.load_fleet(spec)
    return time.perf_counter() - started


def request_mix(emu: EmulatorProcess) -> list[dict[str, str]]:
    """The parameters of the 800 calls of the mix (unsigned: each send is signed afresh)."""
    ids = [i["InstanceId"] for i in list(emu.admin.table("ecs.instances").values())[:300]]
    mix = []
    for n in range(200):
        region = REGIONS[n % len(REGIONS)]
        mix.append({"Action": "DescribeInstances", "RegionId": region, "Tag.1.Key": "backup",
                    "Tag.1.Value": "daily", "MaxResults": "100"})
        mix.append({"Action": "DescribeInstances", "RegionId": region,
                    "InstanceIds": json.dumps(ids[n % 200: n % 200 + 50])})
        mix.append({"Action": "DescribeImages", "RegionId": region, "ImageOwnerAlias": "system"})
        mix.append({"Action": "DescribeRegions"})
    return mix


@dataclass
class Tally:
    """Answers and errors of one mode; ``errors`` counts non-2xx answers by (status, code) and failed
    requests by ``(0, exception type)``."""

    answers: int = 0
    errors: Counter = field(default_factory=Counter)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return self.error_count / self.answers if self.answers else 1.0

    def summary(self) -> str:
        return ", ".join(f"{n} x {status} {code}" for (status, code), n in self.errors.most_common()) or "none"


@dataclass
class ServerRun:
    rps: float
    measured_requests: int
    measured_s: float
    windows: int
    exhausted_windows: int   # windows that ended because their batch ran out (not an error; just shorter)
    signed: int
    sign_s: float            # time spent signing, between windows (not measured)
    server_cpu_s: float      # CPU seconds (user + system) of the emulator process during the windows
    tally: Tally


class Signer:
    """Signs the mix in order, cycling, each URL with a fresh nonce and timestamp."""

    def __init__(self, emu: EmulatorProcess, mix: list[dict[str, str]]) -> None:
        self.base, self.ak, self.sk = emu.base_url, emu.access_key_id, emu.access_key_secret
        self.mix = mix
        self.next = 0
        self.signed = 0
        self.seconds = 0.0

    def batch(self, count: int) -> list:
        from yarl import URL

        started = time.perf_counter()
        urls = []
        for _ in range(count):
            # encoded=True: the URL is already percent-encoded; parsed here, not while measuring
            urls.append(URL(signed_url(self.base, self.ak, self.sk, self.mix[self.next]), encoded=True))
            self.next = (self.next + 1) % len(self.mix)
        self.signed += count
        self.seconds += time.perf_counter() - started
        return urls


async def _send_batch(session, urls: list, seconds: float, concurrency: int, tally: Tally) -> tuple[int, float]:
    """Send each URL once over ``concurrency`` connections until the batch is used up or ``seconds`` pass;
    (answers, elapsed seconds)."""
    import aiohttp

    pending = iter(urls)
    answered = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal answered
        while time.perf_counter() < deadline:
            url = next(pending, None)
            if url is None:
                return
            try:
                async with session.get(url) as resp:
                    body = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                tally.answers += 1
                answered += 1
                tally.errors[(0, type(exc).__name__)] += 1
                continue
            tally.answers += 1
            answered += 1
            if not 200 <= status < 300:
                try:
                    code = json.loads(body).get("Code", "?")
                except (ValueError, AttributeError):
                    code = "?"
                tally.errors[(status, code)] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered, time.perf_counter() - started


def _cpu_seconds(proc) -> float:
    times = proc.cpu_times()
    return times.user + times.system


async def server_rps(signer: Signer, seconds: float, concurrency: int, window: float, server_pid: int) -> ServerRun:
    import aiohttp
    import psutil

    server = psutil.Process(server_pid)
    tally = Tally()
    measured_s = cpu_s = 0.0
    measured = windows = exhausted = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        # warm-up (not measured): opens the connections, first estimate of the rate
        warm = signer.batch(WARMUP_REQUESTS)
        n, elapsed = await _send_batch(session, warm, MAX_WINDOW, concurrency, tally)
        rate = n / elapsed if elapsed > 0 else 1000.0
        while measured_s < seconds:
            span = min(window, seconds - measured_s)
            urls = signer.batch(max(concurrency * 4, math.ceil(rate * span * BATCH_MARGIN)))
            cpu_before = _cpu_seconds(server)
            n, elapsed = await _send_batch(session, urls, span, concurrency, tally)
            cpu_s += _cpu_seconds(server) - cpu_before
            windows += 1
            exhausted += n == len(urls)
            measured += n
            measured_s += elapsed
            rate = measured / measured_s if measured_s > 0 else rate
    return ServerRun(rps=measured / measured_s if measured_s else 0.0, measured_requests=measured,
                     measured_s=measured_s, windows=windows, exhausted_windows=exhausted, signed=signer.signed,
                     sign_s=signer.seconds, server_cpu_s=cpu_s, tally=tally)


def sdk_rps(emu: EmulatorProcess, seconds: float, threads: int) -> tuple[float, Tally]:
    """The SDK signs every call itself (new nonce and timestamp): that cost is part of what is measured."""
    from alibabacloud_ecs20140526 import models
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    tally = Tally()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def work(k: int) -> None:
        client = Client(Config(access_key_id=emu.access_key_id, access_key_secret=emu.access_key_secret,
                               region_id="cn-hangzhou", endpoint=emu.endpoint, protocol="http"))
        n = 0
        errors: Counter = Counter()
        while time.perf_counter() < deadline:
            region = REGIONS[(k + n) % len(REGIONS)]
            try:  # no retry_options in the Config: the SDK does not retry, so every error is seen here
                client.describe_instances(models.DescribeInstancesRequest(
                    region_id=region, max_results=100, tag=[models.DescribeInstancesRequestTag(key="backup",
                                                                                            value="daily")]))
            except Exception as exc:  # every failure is counted and reported
                status = getattr(exc, "statusCode", None) or (getattr(exc, "data", None) or {}).get("statusCode", 0)
                errors[(status, getattr(exc, "code", None) or type(exc).__name__)] += 1
            n += 1
        with lock:
            tally.answers += n
            tally.errors.update(errors)

    started = time.perf_counter()
    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return tally.answers / (time.perf_counter() - started), tally


def run(args: argparse.Namespace) -> tuple[dict, Tally, Tally]:
    """Both modes on a fresh emulator: (JSON-able result, server tally, SDK tally)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)  # darabonba ignores NO_PROXY: keep loopback calls local
    with EmulatorProcess(time_scale=1) as emu:
        load_s = load_fleet(emu, args.instances)
        signer = Signer(emu, request_mix(emu))
        server = asyncio.run(server_rps(signer, args.seconds, args.concurrency, args.window,
                                        emu.proc.pid))
        sdk, sdk_tally = sdk_rps(emu, args.seconds, args.threads)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "instances": args.instances,
        "fleet_load_s": round(load_s, 2), "concurrency": args.concurrency, "threads": args.threads,
        "server_rps": round(server.rps), "server_requests": server.measured_requests,
        "server_measured_s": round(server.measured_s, 2), "server_cpu_s": round(server.server_cpu_s, 2),
        "server_requests_per_cpu_s": (round(server.measured_requests / server.server_cpu_s)
                                      if server.server_cpu_s else None),
        "server_windows": server.windows,
        "server_windows_batch_used_up": server.exhausted_windows,
        "server_answers": server.tally.answers,  # including the warm-up
        "server_errors": server.tally.error_count, "server_error_rate": server.tally.error_rate,
        "server_error_kinds": {f"{s} {c}": n for (s, c), n in server.tally.errors.items()},
        "signed_urls": server.signed, "signing_s": round(server.sign_s, 2),
        "signing_us_per_url": round(server.sign_s / server.signed * 1e6) if server.signed else None,
        "sdk_describe_instances_rps": round(sdk, 1), "sdk_answers": sdk_tally.answers,
        "sdk_errors": sdk_tally.error_count, "sdk_error_rate": sdk_tally.error_rate,
        "sdk_error_kinds": {f"{s} {c}": n for (s, c), n in sdk_tally.errors.items()},
        "load_average": os.getloadavg()[0],
    }
    return result, server.tally, sdk_tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per mode")
    parser.add_argument("--concurrency", type=int, default=16, help="server mode: connections")
    parser.add_argument("--threads", type=int, default=4, help="sdk mode: threads")
    parser.add_argument("--window", type=float, default=5,
                        help=f"server mode: seconds per measurement window, signed ahead (at most {MAX_WINDOW:g})")
    parser.add_argument("--max-error-rate", type=float, default=0.001,
                        help="exit 1 if more than this share of either mode's answers are errors (default 0.001)")
    parser.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    args = parser.parse_args(argv)
    if not 0 < args.window <= MAX_WINDOW:
        parser.error(f"--window must be in (0, {MAX_WINDOW:g}] seconds")
    result, server_tally, sdk_tally = run(args)
    print("| instances | fleet load (s) | server req/s (mix, aiohttp) | server errors / answers | "
          "SDK DescribeInstances req/s | SDK errors / answers |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.instances} | {result['fleet_load_s']} | {result['server_rps']} | "
          f"{server_tally.error_count} / {server_tally.answers} | {result['sdk_describe_instances_rps']} | "
          f"{sdk_tally.error_count} / {sdk_tally.answers} |")
    print(f"server: {result['server_requests']} requests in {result['server_measured_s']} s measured over "
          f"{result['server_windows']} windows ({result['server_windows_batch_used_up']} ended early, batch used "
          f"up); {result['signed_urls']} URLs signed between windows in {result['signing_s']} s "
          f"({result['signing_us_per_url']} us each); emulator CPU {result['server_cpu_s']} s in the windows = "
          f"{result['server_requests_per_cpu_s']} requests per CPU-second; load average {result['load_average']:.2f}")
    if args.json:
        print(json.dumps(result))
    failed = False
    for mode, tally in (("server", server_tally), ("sdk", sdk_tally)):
        if tally.errors:
            print(f"{mode} errors: {tally.summary()}", file=sys.stderr)
        if tally.answers == 0 or tally.error_rate > args.max_error_rate:
            failed = True
            print(f"FAILED: {mode} mode: {tally.error_count} of {tally.answers} answers are errors "
                  f"({tally.error_rate:.2%} > {args.max_error_rate:.2%}); the figures above are not valid",
                  file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
