"""ECS: regions and networks, instances, security groups, disks, images, snapshots, tags, Cloud Assistant, account quotas."""

from . import (  # noqa: F401
    account,
    commands,
    common,
    disks,
    images,
    instances,
    regions,
    security_groups,
    snapshots,
    tags,
    timings,
)
