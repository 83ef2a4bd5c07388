"""Emulator RPC throughput with a large fleet loaded.

Loads N instances (default 10,000) into a fresh emulator, then measures requests per second for
a mix of read calls (DescribeInstances by tag with pages of 100, DescribeInstances by ids,
DescribeImages, DescribeRegions) in two ways:

* ``server``: pre-signed classic (HMAC-SHA1) requests replayed by an aiohttp client with C
  concurrent connections: the emulator's own capacity (client cost is tiny);
* ``sdk``: the official ECS SDK from T threads: what an SDK user sees (the SDK's signing
  and parsing cost the client process CPU too, on the same 2 cores).

Usage: python -m bench.emulator_rpc [--instances 10000] [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

from emulator.control import EmulatorProcess

REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen"]


def signed_url(base: str, ak: str, secret: str, params: dict[str, str]) -> str:
    """A classic RPC (v1, HMAC-SHA1) signed GET URL, as aliyun-python-sdk-core builds it."""
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


def request_mix(emu: EmulatorProcess) -> list[str]:
    ak, sk = emu.access_key_id, emu.access_key_secret
    ids = [i["InstanceId"] for i in list(emu.admin.table("ecs.instances").values())[:300]]
    urls = []
    for n in range(200):
        region = REGIONS[n % len(REGIONS)]
        urls.append(signed_url(emu.base_url, ak, sk, {"Action": "DescribeInstances", "RegionId": region,
                                                      "Tag.1.Key": "backup", "Tag.1.Value": "daily",
                                                      "MaxResults": "100"}))
        urls.append(signed_url(emu.base_url, ak, sk, {"Action": "DescribeInstances", "RegionId": region,
                                                      "InstanceIds": json.dumps(ids[n % 200: n % 200 + 50])}))
        urls.append(signed_url(emu.base_url, ak, sk, {"Action": "DescribeImages", "RegionId": region,
                                                      "ImageOwnerAlias": "system"}))
        urls.append(signed_url(emu.base_url, ak, sk, {"Action": "DescribeRegions"}))
    return urls


async def server_rps(urls: list[str], seconds: float, concurrency: int) -> tuple[float, int, int]:
    import aiohttp

    done = errors = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker(offset: int) -> None:
            nonlocal done, errors
            i = offset
            while time.perf_counter() < deadline:
                async with session.get(urls[i % len(urls)]) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                done += 1
                i += concurrency
        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    return done / elapsed, done, errors


def sdk_rps(emu: EmulatorProcess, seconds: float, threads: int) -> float:
    from alibabacloud_ecs20140526 import models
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    count = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def work(k: int) -> None:
        client = Client(Config(access_key_id=emu.access_key_id, access_key_secret=emu.access_key_secret,
                               region_id="cn-hangzhou", endpoint=emu.endpoint, protocol="http"))
        n = 0
        while time.perf_counter() < deadline:
            region = REGIONS[(k + n) % len(REGIONS)]
            client.describe_instances(models.DescribeInstancesRequest(
                region_id=region, max_results=100, tag=[models.DescribeInstancesRequestTag(key="backup",
                                                                                        value="daily")]))
            n += 1
        with lock:
            count[0] += n

    started = time.perf_counter()
    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return count[0] / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    with EmulatorProcess(time_scale=1) as emu:
        load_s = load_fleet(emu, args.instances)
        urls = request_mix(emu)
        rps, done, errors = asyncio.run(server_rps(urls, args.seconds, args.concurrency))
        sdk = sdk_rps(emu, args.seconds, args.threads)
    result = {"instances": args.instances, "fleet_load_s": round(load_s, 2), "server_rps": round(rps),
              "server_requests": done, "server_errors": errors, "sdk_describe_instances_rps": round(sdk)}
    print("| instances | fleet load (s) | server req/s (mix, aiohttp) | errors | SDK DescribeInstances req/s |")
    print("|---|---|---|---|---|")
    print(f"| {args.instances} | {result['fleet_load_s']} | {result['server_rps']} | {errors} | "
          f"{result['sdk_describe_instances_rps']} |")
    return result


if __name__ == "__main__":
    main()
