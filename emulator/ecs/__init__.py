"""ECS: regions and networks, instances, disks, images, snapshots, tags, Cloud Assistant."""

from . import (  # noqa: F401
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
