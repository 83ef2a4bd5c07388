"""Image check (DetectionOptions) and the brokenness of disks, snapshots and images, as plain data.

A record that holds an operating system (image, snapshot, disk) may carry:

* ``_issues``: the repair items (``REPAIR_ITEMS``) whose check fails, e.g. ``["fstab", "grub"]``; absent or
  ``[]`` means healthy. Items of ``HIGH`` risk keep the system from booting.
* ``_invalid``: ``True`` when the disk holds no Linux system at all: the check's ``SystemImage`` item reads
  ``Invalid`` and no repair can help.

They travel with the data: a snapshot copies its disk's, a disk made from a snapshot (or an image) copies the
snapshot's (the image's), an image copies its system snapshot's, a copy its source's. The public command
``ACS-ECS-ImageRepair-for-linux.sh`` (:mod:`emulator.ecs.public_commands`) removes the items it repairs from the
data disk it ran on.

An image shows the result of a check (``DetectionOptions``) only when one ran: CreateImage with
``DetectionStrategy=Standard`` (``Processing`` until the image is Available plus the ``image_detection`` timing,
then ``Finished``) or a fleet image that asks for it. Shape, as DescribeImages answers::

    {"Status": "Finished", "Items": {"Item": [
        {"Name": "SystemImage", "Value": "Unbootable", "RiskLevel": "High", "RiskCode": "SystemImage.BootFailure"},
        {"Name": "Fstab", "Value": "Unsupported", "RiskLevel": "High", "RiskCode": "Fstab.InvalidEntry"},
        {"Name": "Virtio", "Value": "Supported"}, ...]}}

Items without risk carry no RiskLevel/RiskCode (as the API documents). The names of the items beyond
``SystemImage`` and ``Nvme``, their values other than ``Supported``/``Invalid`` and the risk codes are the
emulator's: Alibaba documents the fields, not the catalogue.
"""

from __future__ import annotations

from typing import Any

# the repair items of ACS-ECS-RepairImage (its repairItems' AllowedValues), "all" aside
REPAIR_ITEMS = ("assist", "aegis", "growpart", "virtio", "selinux", "dhcp", "grub", "fstab", "nvme", "cloudinit")
DEFAULT_REPAIR_ITEMS = ("assist", "cloudinit", "virtio", "nvme", "fstab", "grub", "dhcp", "growpart")
DEFAULT_BROKEN = ("fstab", "grub")  # what a fleet image's "broken: true" means

# repair item -> (check item Name, RiskLevel when at risk, RiskCode)
CHECKS: dict[str, tuple[str, str, str]] = {
    "virtio": ("Virtio", "High", "Virtio.NotInstalled"),
    "fstab": ("Fstab", "High", "Fstab.InvalidEntry"),
    "grub": ("Grub", "High", "Grub.InvalidConfig"),
    "nvme": ("Nvme", "High", "NVMe.NotInstalled"),
    "dhcp": ("Dhcp", "High", "Dhcp.NotEnabled"),
    "selinux": ("Selinux", "High", "Selinux.Enforcing"),
    "cloudinit": ("CloudInit", "Medium", "CloudInit.NotInstalled"),
    "assist": ("CloudAssistant", "Medium", "CloudAssistant.NotInstalled"),
    "aegis": ("SecurityCenterAgent", "Medium", "SecurityCenterAgent.NotInstalled"),
    "growpart": ("OnlineResizeFS", "Medium", "OnlineResizeFS.NotSupported"),
}
HIGH = frozenset(item for item, (_, level, _) in CHECKS.items() if level == "High")


def issues_of(rec: dict | None) -> list[str]:
    """The failing repair items of a record (in catalogue order)."""
    found = set((rec or {}).get("_issues") or ())
    return [item for item in REPAIR_ITEMS if item in found]


def carry(src: dict | None, dst: dict) -> dict:
    """Copy the brokenness of ``src`` (image, snapshot or disk) onto ``dst``; returns ``dst``."""
    dst["_issues"] = issues_of(src)
    dst["_invalid"] = bool((src or {}).get("_invalid"))
    return dst


def unbootable(rec: dict | None) -> bool:
    """Whether a system disk (or image) with this data keeps an instance from booting its OS."""
    return bool((rec or {}).get("_invalid")) or any(item in HIGH for item in issues_of(rec))


def items(rec: dict) -> list[dict[str, str]]:
    """The check items of a finished check of ``rec``."""
    issues = set(issues_of(rec))
    if rec.get("_invalid"):
        system = {"Name": "SystemImage", "Value": "Invalid", "RiskLevel": "High", "RiskCode": "SystemImage.Invalid"}
    elif issues & HIGH:
        system = {"Name": "SystemImage", "Value": "Unbootable", "RiskLevel": "High",
                  "RiskCode": "SystemImage.BootFailure"}
    else:
        system = {"Name": "SystemImage", "Value": "Supported"}
    out = [system]
    for item, (name, level, code) in CHECKS.items():
        if item in issues:
            out.append({"Name": name, "Value": "Unsupported", "RiskLevel": level, "RiskCode": code})
        else:
            out.append({"Name": name, "Value": "Supported"})
    return out


def detection_out(img: dict) -> dict[str, Any]:
    """``DetectionOptions`` of DescribeImages."""
    status = (img.get("_detection") or {}).get("Status", "")
    return {"Status": status, "Items": {"Item": items(img) if status == "Finished" else []}}


def parse_broken(value: Any, where: str) -> list[str] | str:
    """A fleet spec's ``broken``: ``true`` (the default items), ``false``/absent, or a list of repair items.
    Returns the items, or an error message (the caller raises)."""
    if value is None or value is False:
        return []
    if value is True:
        return list(DEFAULT_BROKEN)
    if isinstance(value, list) and value and all(isinstance(v, str) and v in REPAIR_ITEMS for v in value):
        return [item for item in REPAIR_ITEMS if item in value]
    return (f"{where} must be true, false or a non-empty list of repair items ({', '.join(REPAIR_ITEMS)}), "
            f"got {value!r}")
