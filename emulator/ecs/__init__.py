"""ECS: regions and networks, instances, disks, images, snapshots, tags, Cloud Assistant."""

from . import regions  # noqa: F401
