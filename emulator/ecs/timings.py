"""Simulated durations of ECS operations, overridable at run time.

Defaults are realistic (seconds of simulated time). Override them with the admin API::

    POST /_emulator/timings {"image_create_base": 60, "copy_per_gib": 5}
    GET  /_emulator/timings

Overrides live in ``state.table("admin")["timings"]`` so they survive a restart and are
forgotten by ``POST /_emulator/reset``. Image, copy and snapshot durations (and the CreateImage
snapshot point) are multiplied by the per-region slowness factor of the fault config
(``"slow_regions": {"cn-beijing": 3.0}``).
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError
from ..registry import admin_route
from ..state import State

DEFAULTS: dict[str, float] = {
    "instance_pending": 15.0,       # RunInstances: Pending -> Starting
    "instance_start": 40.0,         # Starting -> Running (RunInstances, StartInstance)
    "instance_stop": 30.0,          # Stopping -> Stopped
    "instance_force_stop": 10.0,    # Stopping -> Stopped with ForceStop
    "instance_reboot_stop": 20.0,   # RebootInstance: Stopping -> Starting
    "image_create_base": 120.0,     # CreateImage: 120 s + 15 s per GiB of all disks
    "image_create_per_gib": 15.0,
    "image_snapshot_point": 20.0,   # CreateImage: the disks' snapshots are taken (point in time) 20 s in,
                                    # capped at half the image's duration; times the region's slowness
    "copy_base": 300.0,             # CopyImage: 300 s + 20 s per GiB, once a slot is free
    "copy_per_gib": 20.0,
    "copy_concurrency": 5,          # running copies per destination region; the rest wait
    "snapshot_base": 60.0,          # CreateSnapshot: 60 s + 2 s per GiB
    "snapshot_per_gib": 2.0,
    "image_quota": 100,             # custom images per region (faults "image_quota" overrides per region)
    "image_detection": 120.0,       # CreateImage DetectionStrategy=Standard: the check ends this long after
                                    # the image is Available (times the region's slowness)
    "image_repair_base": 20.0,      # ACS-ECS-ImageRepair-for-linux.sh: 20 s + 5 s per repair item
    "image_repair_per_item": 5.0,
}


def get(state: State, name: str) -> float:
    overrides = state.table("admin").get("timings") or {}
    return float(overrides.get(name, DEFAULTS[name]))


def faults_cfg(state: State) -> dict:
    """The fault config as saved in the state (readable from event handlers too)."""
    return state.table("admin").get("faults") or {}


def slowness(state: State, region: str, faults: dict | None = None) -> float:
    cfg = faults if faults is not None else faults_cfg(state)
    try:
        return max(0.0, float((cfg.get("slow_regions") or {}).get(region, 1.0)))
    except (TypeError, ValueError):
        return 1.0


def image_quota(state: State, region: str, faults: dict | None = None) -> int:
    cfg = faults if faults is not None else faults_cfg(state)
    quota = cfg.get("image_quota")
    quota = {} if quota is None else quota
    if isinstance(quota, dict) and region in quota:
        return int(quota[region])
    if isinstance(quota, int | float) and not isinstance(quota, bool):
        return int(quota)
    return int(get(state, "image_quota"))


@admin_route("GET", "timings")
def _get_timings(emulator: Any, body: dict, query: dict) -> dict:
    return {**DEFAULTS, **(emulator.state.table("admin").get("timings") or {})}


@admin_route("POST", "timings")
def _set_timings(emulator: Any, body: dict, query: dict) -> dict:
    unknown = sorted(set(body) - set(DEFAULTS))
    if unknown:
        raise ApiError("InvalidTimings", f"unknown timing names: {', '.join(unknown)}", 400)
    clean: dict[str, float] = {}
    for key, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ApiError("InvalidTimings", f"timing {key} must be a non-negative number", 400)
        clean[key] = float(value)
    admin = emulator.state.table("admin")
    admin["timings"] = {**(admin.get("timings") or {}), **clean}
    return _get_timings(emulator, {}, {})


@admin_route("PUT", "timings")
def _replace_timings(emulator: Any, body: dict, query: dict) -> dict:
    emulator.state.table("admin")["timings"] = {}
    return _set_timings(emulator, body, query)
