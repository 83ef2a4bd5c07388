"""Alibaba Cloud's public Cloud Assistant commands that the emulator knows, and what they do on an instance.

A public command is named by its CommandId (``InvokeCommand CommandId=ACS-ECS-ImageRepair-for-linux.sh``, as
OOS's ACS-ECS-RepairImage sends it), exists in every region, and is listed by DescribeCommands only with
``Provider`` (``AlibabaCloud`` lists every public command, ``AlibabaCloud.ECS.GuestOS`` its own). Its parameters
have definitions (required or with a default). The script itself is the emulator's sketch of the real one; what
counts is what a run does:

``ACS-ECS-ImageRepair-for-linux.sh`` (parameters ``repairitems``: space-separated repair items or ``all``, default
the eight of ACS-ECS-RepairImage; ``disk_serial``: required) repairs offline the Linux system held by a *data disk*
of the instance it runs on, found by serial number (``DescribeDisks`` ``SerialNumber``):

* exit 0: each repair item gets a line (``FIXED`` when the disk had that problem, ``OK`` when not) and the
  problems repaired leave the disk's data (``_issues``): a snapshot of the disk taken afterwards, and an image made
  from it, are healthy if every problem was among the items;
* exit 1: no data disk of the instance has that serial (the system disk's own serial included: the running system
  is never repaired); nothing changes;
* exit 2: an unknown repair item; nothing changes;
* exit 3: the disk holds no Linux system (``_invalid``); nothing changes.

A run takes ``image_repair_base`` + ``image_repair_per_item`` per item (timings, 20 s + 5 s). Command-behaviour
rules that match the rendered script (it contains the command's name and ``DISK_SERIAL=<serial>``) override the
outcome field by field (``exit_code``, ``output``, ``status``, ``duration``); the disk is repaired only by a run
that ends Success with exit code 0 after the simulation found the disk.

Provider ``AlibabaCloud.ECS.GuestOS`` is one of the providers Alibaba documents for DescribeCommands; the
command's Category, Version and script are the emulator's (not verified against the real catalogue).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from ..state import State
from . import common, detection, disks, timings

REPAIR = "ACS-ECS-ImageRepair-for-linux.sh"
PROVIDER_ROOT = "AlibabaCloud"

_REPAIR_SCRIPT = """#!/bin/bash
# ACS-ECS-ImageRepair-for-linux.sh: offline repair of a Linux system disk attached to this instance as a data disk
# repairitems: {all|assist aegis growpart virtio selinux dhcp grub fstab nvme cloudinit}; disk_serial: the disk's
# serial number (lsblk -dno NAME,SERIAL)
REPAIR_ITEMS="{{repairitems}}"
DISK_SERIAL={{disk_serial}}
MNT=/mnt/image_repair
dev=$(lsblk -dno NAME,SERIAL | awk -v s="$DISK_SERIAL" '$2 == s {print "/dev/" $1}')
[ -n "$dev" ] || { echo "[ImageRepair] ERROR: no data disk with serial $DISK_SERIAL"; exit 1; }
[ "$dev" != "$(lsblk -no PKNAME "$(findmnt -no SOURCE /)" | sed 's|^|/dev/|')" ] || exit 1
root=$(lsblk -lno NAME,FSTYPE "$dev" | awk '$2 ~ /ext4|xfs|btrfs/ {print "/dev/" $1}' | tail -1)
[ -n "$root" ] || { echo "[ImageRepair] ERROR: $dev: no Linux root partition found"; exit 3; }
mkdir -p $MNT && mount "$root" $MNT || exit 3
for item in $REPAIR_ITEMS; do /usr/local/share/image-repair/repair.sh "$item" $MNT || failed=1; done
umount $MNT
exit ${failed:-0}
"""

# what each repair item does when it finds its problem (FIXED) or not (OK)
_FIXED = {
    "assist": "aliyun-assist 2.2.3.857 installed and enabled (aliyun.service)",
    "aegis": "Security Center agent (aegis) installed",
    "growpart": "cloud-utils-growpart installed: the root partition grows with the disk",
    "virtio": "virtio_blk, virtio_net and virtio_pci added to the initramfs (dracut -f)",
    "selinux": "SELINUX=permissive in /etc/selinux/config",
    "dhcp": "eth0 set to DHCP (ifcfg-eth0 / netplan)",
    "grub": "grub.cfg regenerated (console=tty0 console=ttyS0,115200n8, root=UUID=...)",
    "fstab": "/etc/fstab: device names replaced with UUID=..., data disk entries set nofail",
    "nvme": "nvme and nvme_core added to the initramfs, io_timeout=4294967295",
    "cloudinit": "cloud-init 23.2 installed with the Aliyun datasource",
}
_OK = {
    "assist": "aliyun-assist present",
    "aegis": "Security Center agent present",
    "growpart": "growpart present",
    "virtio": "virtio drivers in the initramfs",
    "selinux": "SELinux not enforcing",
    "dhcp": "eth0 uses DHCP",
    "grub": "grub.cfg boots the installed kernel with the serial console",
    "fstab": "/etc/fstab entries by UUID",
    "nvme": "nvme driver in the initramfs",
    "cloudinit": "cloud-init configured for Aliyun",
}

_PUBLIC: dict[str, dict[str, Any]] = {
    REPAIR: {
        "Name": REPAIR, "Type": "RunShellScript", "Provider": "AlibabaCloud.ECS.GuestOS", "Category": "ImageRepair",
        "Version": 1, "Latest": True, "Timeout": 3600, "WorkingDir": "/root", "CreationTime": "2023-07-27T08:00:00Z",
        "Description": "Repairs offline a Linux system disk attached as a data disk, from the results of an image "
                       "check (used by the OOS template ACS-ECS-RepairImage).",
        "Content": _REPAIR_SCRIPT,
        "Parameters": [
            {"ParameterName": "repairitems", "Required": False, "DefaultValue": " ".join(detection.DEFAULT_REPAIR_ITEMS),
             "Description": "The items to repair, separated by spaces, or all.",
             "PossibleValues": ["all", *detection.REPAIR_ITEMS], "PatternRegex": ""},
            {"ParameterName": "disk_serial", "Required": True, "DefaultValue": "",
             "Description": "The serial number of the data disk to repair.", "PossibleValues": [],
             "PatternRegex": "^[0-9a-z]{1,64}$"},
        ],
    },
}


def get(command_id: str | None, region: str) -> dict | None:
    """The public command ``command_id`` as a command record of region ``region`` (the shape
    :mod:`emulator.ecs.commands` keeps), or None."""
    spec = _PUBLIC.get(command_id or "")
    if spec is None:
        return None
    return {
        "CommandId": spec["Name"], "RegionId": region, "Name": spec["Name"], "Description": spec["Description"],
        "Type": spec["Type"], "CommandContent": base64.b64encode(spec["Content"].encode()).decode(),
        "WorkingDir": spec["WorkingDir"], "Timeout": spec["Timeout"], "EnableParameter": True,
        "ParameterNames": [d["ParameterName"] for d in spec["Parameters"]],
        "Defaults": {d["ParameterName"]: d["DefaultValue"] for d in spec["Parameters"] if not d["Required"]},
        "ParameterDefinitions": [dict(d) for d in spec["Parameters"]], "CreationTime": spec["CreationTime"],
        "Keep": True, "InvokeTimes": 0, "Provider": spec["Provider"], "Category": spec["Category"],
        "Version": spec["Version"], "Latest": spec["Latest"], "Public": True,
    }


def listed(provider: str, region: str) -> list[dict]:
    """The public commands DescribeCommands lists for ``Provider=provider``."""
    out = []
    for name, spec in _PUBLIC.items():
        if provider == spec["Provider"] or provider == PROVIDER_ROOT \
                or spec["Provider"].startswith(provider.rstrip(".") + "."):
            out.append(get(name, region))
    return [c for c in out if c is not None]


# -- what a run does ---------------------------------------------------------------------------------------------
def _items(values: dict[str, str]) -> tuple[list[str], list[str]]:
    """(repair items asked, unknown words)."""
    words = (values.get("repairitems") or "").replace(",", " ").split()
    if "all" in words:
        return list(detection.REPAIR_ITEMS), [w for w in words if w != "all" and w not in detection.REPAIR_ITEMS]
    known = [w for w in dict.fromkeys(words) if w in detection.REPAIR_ITEMS]
    return known, [w for w in words if w not in detection.REPAIR_ITEMS]


def duration(state: State, command_id: str, values: dict[str, str]) -> float | None:
    """How long a run of the public command takes (simulated seconds), None when it is not simulated."""
    if command_id != REPAIR:
        return None
    items, _ = _items(values)
    return timings.get(state, "image_repair_base") + timings.get(state, "image_repair_per_item") * len(items)


def simulate(state: State, command_id: str, instance_id: str,
             values: dict[str, str]) -> tuple[int, str, Callable[[], None] | None] | None:
    """``(exit code, output, apply)`` of a finished run on ``instance_id``, None when the command is not simulated.
    ``apply()`` makes the run's changes; the caller calls it only when the run ends Success with exit code 0."""
    if command_id != REPAIR:
        return None
    serial = (values.get("disk_serial") or "").strip()
    items, unknown = _items(values)
    if unknown or not items:
        return 2, (f"[ImageRepair] ERROR: unsupported repair item(s): {' '.join(unknown) or '(none given)'}; "
                   f"valid: all {' '.join(detection.REPAIR_ITEMS)}\n"), None
    attached = common.disks_of(state, instance_id)
    listing = ", ".join(f"{disks.guest_device(d).removeprefix('/dev/')} {disks.serial_number(d)}" for d in attached)
    disk = next((d for d in attached if disks.serial_number(d) == serial), None)
    if disk is None or disk.get("Type") != "data":
        why = "is this instance's system disk (the running system is never repaired)" if disk is not None \
            else "is not attached to this instance"
        return 1, (f"[ImageRepair] ERROR: the disk with serial {serial or '(empty)'} {why}; lsblk -dno NAME,SERIAL: "
                   f"{listing}\n"), None
    device = disks.guest_device(disk)
    head = f"[ImageRepair] disk serial {serial} is {device} ({disk['DiskId']}), items: {' '.join(items)}\n"
    if disk.get("_invalid"):
        return 3, head + f"[ImageRepair] ERROR: {device}: no Linux root partition found\n", None
    issues = set(detection.issues_of(disk))
    lines = [head, f"[ImageRepair] mount {device}1 on /mnt/image_repair: ok\n"]
    fixed = [item for item in items if item in issues]
    for item in items:
        verdict, text = ("FIXED", _FIXED[item]) if item in issues else ("OK", _OK[item])
        lines.append(f"[{item}]{' ' * (10 - len(item))}{verdict:<6} {text}\n")
    left = [item for item in detection.issues_of(disk) if item not in items]
    lines.append("[ImageRepair] umount /mnt/image_repair: ok\n")
    lines.append(f"[ImageRepair] done: {len(fixed)} fixed, {len(items) - len(fixed)} ok, 0 failed"
                 + (f"; not asked, still failing: {' '.join(left)}" if left else "") + "\n")

    def apply() -> None:
        disk["_issues"] = left
        disk.setdefault("_repaired", [])
        disk["_repaired"] = sorted(set(disk["_repaired"]) | set(items))
        state.dirty = True

    return 0, "".join(lines), apply
