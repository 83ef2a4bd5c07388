"""ECS: regions and networks, instances, disks, images, snapshots, tags, Cloud Assistant."""

from . import regions  # noqa: F401
from . import commands  # noqa: F401
from . import timings, common, disks, instances, snapshots, images, tags  # noqa: F401,E401
