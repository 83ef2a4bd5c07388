"""ECS: regions and networks, instances, disks, images, snapshots, tags, Cloud Assistant, account quotas."""

from . import (  # noqa: F401
    account,
    commands,
    common,
    disks,
    images,
    instances,
    regions,
    snapshots,
    tags,
    timings,
)
