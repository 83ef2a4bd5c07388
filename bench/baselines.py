"""The two baselines of issue 5, run through the official ECS SDK against the emulator.

* :func:`seed_script` ports ``shared/seeds/004_*`` (the 2018 "imageoper" script). The script works on one
  instance at a time: CreateImage, then ``_copy_image`` polls DescribeImages until the image is Available
  (``time.sleep(300)`` between polls), then calls CopyImage and moves on to the next instance. It never
  waits for the copy. The seed has one destination region; with D destinations the port calls CopyImage
  once per destination. Two deviations make the port measurable, and both are documented in
  bench/README.md:

  - ``mode="faithful"`` copies the poll loop exactly. DescribeImages is called without ``Status``, so the
    API returns Available images only. While the image is Creating the list is empty,
    ``['Images']['Image'][0]`` raises IndexError, and the script's ``except Exception: pass`` retries *at
    once*, with no sleep. That is a hot loop for the whole build time, a bug in the seed.
    ``mode="intended"`` (the default) passes every status, so the loop does what the author meant: one
    poll every 300 simulated seconds.
  - The seed stamps names to the minute (``%Y-%m-%d-%H:%M``) with the local clock. The port uses the
    emulator's simulated clock and appends the instance id. Otherwise two images that start in the same
    simulated minute would collide (``InvalidImageName.Duplicated``).

  The seed's run ends before its copies do. To time the backup to completion, the port then polls each
  copy every 300 simulated seconds until all are Available. Those calls are counted too.

* :func:`oos_loop` is an OOS-style execution: a loop over the instances with ``RateControl`` Concurrency 10.
  Each item runs the ``ACS::ECS::CreateImage`` action (DescribeInstances, CheckFor DescribeInstances
  Running/Stopped, CreateImage, WaitFor DescribeImages Available), then ``ACS::ECS::CopyImage`` for every
  destination region in parallel (CopyImage, WaitFor DescribeImages Available in the destination). Every
  WaitFor uses the templates' schedule: ``Retries: 296``, ``MaxRetryInterval: 300`` and the OOS defaults
  DelayType Exponential, Delay 2, BackOff 2. So the delay before retry n (0-based) is
  ``min(2 * 2**n, 300)`` simulated seconds.

Simulated seconds become real ones by dividing by the emulator's time scale.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

ALL_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
SEED_POLL_SIM = 300.0
OOS_RETRIES = 296
OOS_MAX_RETRY_INTERVAL = 300.0
OOS_DELAY = 2.0
OOS_BACKOFF = 2.0
OOS_CONCURRENCY = 10


def oos_delays(retries: int = OOS_RETRIES, delay: float = OOS_DELAY, backoff: float = OOS_BACKOFF,
               cap: float = OOS_MAX_RETRY_INTERVAL) -> list[float]:
    """Simulated seconds slept before each WaitFor retry (DelayType Exponential, capped).

    >>> oos_delays(10)
    [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]
    """
    return [min(delay * backoff ** n, cap) for n in range(retries)]


@dataclass
class Target:
    """One instance to back up."""

    instance_id: str
    region: str


@dataclass
class BaselineResult:
    name: str
    instances: int
    wall_real: float = 0.0
    completed: int = 0           # (instance, destination) copies that ended Available
    failed: list[str] = field(default_factory=list)
    client_errors: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def error(self, code: str) -> None:
        with _LOCK:
            self.client_errors[code] = self.client_errors.get(code, 0) + 1


_LOCK = threading.Lock()


class Sim:
    """Simulated time as the benchmark client sees it: sleeps and timestamps."""

    def __init__(self, time_scale: float, sim_now: float, deadline_real: float) -> None:
        self.scale = float(time_scale)
        self._sim0 = sim_now
        self._real0 = time.monotonic()
        self.deadline = deadline_real

    def now(self) -> float:
        return self._sim0 + (time.monotonic() - self._real0) * self.scale

    def sleep(self, sim_seconds: float) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError("baseline ran past its real-time deadline")
        time.sleep(max(0.0, sim_seconds / self.scale))

    def stamp(self) -> str:
        """The seed's ``time.strftime("%Y-%m-%d-%H:%M")`` on the simulated clock."""
        return datetime.fromtimestamp(self.now(), tz=UTC).strftime("%Y-%m-%d-%H:%M")

    def expired(self) -> bool:
        return time.monotonic() > self.deadline


def ecs_client_factory(endpoint: str, access_key_id: str, access_key_secret: str) -> Callable[[str], object]:
    """``factory(region)`` -> cached official ECS client pointed at the emulator (one per thread and region)."""
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    local = threading.local()

    def make(region: str):
        cache = getattr(local, "clients", None)
        if cache is None:
            cache = local.clients = {}
        if region not in cache:
            cache[region] = Client(Config(access_key_id=access_key_id, access_key_secret=access_key_secret,
                                          region_id=region, endpoint=endpoint, protocol="http",
                                          read_timeout=30000, connect_timeout=5000))
        return cache[region]

    return make


def _code(exc: Exception) -> str:
    return str(getattr(exc, "code", None) or type(exc).__name__)


def _images(body) -> list:
    return list(body.images.image) if body.images and body.images.image else []


# -- seed script port -----------------------------------------------------------------------------
def seed_script(client: Callable[[str], object], targets: Iterable[Target], destinations: list[str], sim: Sim,
                mode: str = "intended", poll_sim: float = SEED_POLL_SIM) -> BaselineResult:
    """Sequential create -> poll -> copy per instance, then wait for every copy (see module doc)."""
    from alibabacloud_ecs20140526 import models as m

    targets = list(targets)
    result = BaselineResult(name=f"seed-script ({mode})", instances=len(targets))
    started = time.monotonic()
    copies: list[tuple[str, str, str]] = []  # (destination region, copy id, instance id)
    for t in targets:
        ecs = client(t.region)
        stamp = sim.stamp()
        try:
            image_id = ecs.create_image(m.CreateImageRequest(
                region_id=t.region, instance_id=t.instance_id,
                image_name=f"api-source-image{stamp}-{t.instance_id}",
                description=f"api-source-image源镜像描述信息{stamp}")).body.image_id
        except Exception as exc:  # the seed lets this propagate and dies; we record it and go on
            result.error(_code(exc))
            result.failed.append(t.instance_id)
            continue
        # _copy_image: wait until the source image is Available
        while True:
            if sim.expired():
                raise TimeoutError(f"seed-script: {image_id} not Available before the deadline")
            try:
                req = m.DescribeImagesRequest(region_id=t.region, image_id=image_id)
                if mode == "intended":
                    req.status = ALL_STATUSES
                status = _images(ecs.describe_images(req).body)[0].status  # IndexError while Creating (faithful)
                if status == "Available":
                    break
                if status == "CreateFailed" and mode == "intended":
                    break
                sim.sleep(poll_sim)
            except IndexError:
                result.error("IndexError (image not listed yet)")
                if mode == "intended":
                    sim.sleep(poll_sim)
            except Exception as exc:  # the seed: ``except Exception as e: pass``
                result.error(_code(exc))
        if status != "Available":
            result.failed.append(t.instance_id)
            continue
        for dest in destinations:
            stamp = sim.stamp()
            try:
                copy_id = ecs.copy_image(m.CopyImageRequest(
                    region_id=t.region, image_id=image_id, destination_region_id=dest,
                    destination_image_name=f"api-destination-image{stamp}-{t.instance_id}",
                    destination_description=f"api-destination-image目的镜像描述信息{stamp}")).body.image_id
                copies.append((dest, copy_id, t.instance_id))
            except Exception as exc:
                result.error(_code(exc))
                result.failed.append(f"{t.instance_id}->{dest}")
    # not in the seed: wait until the copies are done, one DescribeImages per copy every poll_sim
    pending = list(copies)
    while pending:
        still = []
        for dest, copy_id, iid in pending:
            try:
                imgs = _images(client(dest).describe_images(m.DescribeImagesRequest(
                    region_id=dest, image_id=copy_id, status=ALL_STATUSES)).body)
            except Exception as exc:
                result.error(_code(exc))
                still.append((dest, copy_id, iid))
                continue
            status = imgs[0].status if imgs else "missing"
            if status == "Available":
                result.completed += 1
            elif status in ("CreateFailed", "missing"):
                result.failed.append(f"{iid}->{dest}")
            else:
                still.append((dest, copy_id, iid))
        pending = still
        if pending:
            sim.sleep(poll_sim)
    result.wall_real = time.monotonic() - started
    return result


# -- OOS-style loop -------------------------------------------------------------------------------
def _wait_for(describe: Callable[[], list], result: BaselineResult, sim: Sim, delays: list[float]) -> str:
    """ACS::WaitFor: call, compare with DesiredValues [Available], sleep the next delay; fail after Retries."""
    for delay in [*delays, None]:
        try:
            statuses = [i.status for i in describe()]
            if statuses and all(s == "Available" for s in statuses):
                return "Available"
        except Exception as exc:  # an API error counts as one failed try
            result.error(_code(exc))
        if delay is None:
            break
        sim.sleep(delay)
    return "RetriesExhausted"


def oos_loop(client: Callable[[str], object], targets: Iterable[Target], destinations: list[str], sim: Sim,
             concurrency: int = OOS_CONCURRENCY, delays: list[float] | None = None) -> BaselineResult:
    """OOS RateControl Concurrency loop of ACS::ECS::CreateImage + ACS::ECS::CopyImage per instance."""
    from alibabacloud_ecs20140526 import models as m

    targets = list(targets)
    delays = delays if delays is not None else oos_delays()
    result = BaselineResult(name=f"OOS-style loop (concurrency {concurrency})", instances=len(targets))
    started = time.monotonic()

    def copy_one(t: Target, image_id: str, dest: str) -> bool:
        ecs = client(t.region)
        try:
            copy_id = ecs.copy_image(m.CopyImageRequest(
                region_id=t.region, image_id=image_id, destination_region_id=dest,
                destination_image_name=f"{image_id}-exec-{t.instance_id}-{dest}", encrypted=False)).body.image_id
        except Exception as exc:
            result.error(_code(exc))
            return False
        # untilCopyImageReady: DescribeImages {RegionId: target, ImageId} (no Status: Available only)
        status = _wait_for(lambda: _images(client(dest).describe_images(m.DescribeImagesRequest(
            region_id=dest, image_id=copy_id)).body), result, sim, delays)
        return status == "Available"

    def item(t: Target) -> None:
        ecs = client(t.region)
        try:
            found = ecs.describe_instances(m.DescribeInstancesRequest(
                region_id=t.region, instance_ids=f'["{t.instance_id}"]')).body
            if not found.instances.instance:
                result.failed.append(t.instance_id)
                return
            # checkInstanceReady (ACS::CheckFor: one call, fails unless Running/Stopped)
            again = ecs.describe_instances(m.DescribeInstancesRequest(
                region_id=t.region, instance_ids=f'["{t.instance_id}"]')).body
            if again.instances.instance[0].status not in ("Running", "Stopped"):
                result.failed.append(t.instance_id)
                return
            image_id = ecs.create_image(m.CreateImageRequest(
                region_id=t.region, instance_id=t.instance_id, image_name=f"image_of_{t.instance_id}_exec")
            ).body.image_id
        except Exception as exc:
            result.error(_code(exc))
            result.failed.append(t.instance_id)
            return
        status = _wait_for(lambda: _images(ecs.describe_images(m.DescribeImagesRequest(
            region_id=t.region, image_id=image_id, status=ALL_STATUSES)).body), result, sim, delays)
        if status != "Available":
            result.failed.append(t.instance_id)
            return
        # ACS::ECS::CopyImage looped over the destination regions (BulkyCopyImage RateControl 5 >= D)
        with ThreadPoolExecutor(max_workers=max(1, min(5, len(destinations)))) as pool:
            oks = list(pool.map(lambda d: copy_one(t, image_id, d), destinations))
        with _LOCK:
            result.completed += sum(oks)
            result.failed.extend(f"{t.instance_id}->{d}" for d, ok in zip(destinations, oks, strict=True) if not ok)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for fut in [pool.submit(item, t) for t in targets]:
            fut.result()
    result.wall_real = time.monotonic() - started
    return result
