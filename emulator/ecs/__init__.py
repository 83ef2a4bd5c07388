"""ECS: regions and networks, instances, security groups, disks, images, snapshots, tags, Cloud Assistant (commands,
public commands, the agent), image checks, account quotas."""

from . import (  # noqa: F401
    account,
    agent,
    cloud_assistant,
    commands,
    common,
    detection,
    disks,
    images,
    instances,
    public_commands,
    regions,
    security_groups,
    snapshots,
    tags,
    timings,
)
