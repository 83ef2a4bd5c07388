"""VPC API (2016-04-28): DescribeVpcs and DescribeVSwitches over the networks ECS seeds.

The records live in the tables ``vpc.vpcs`` and ``vpc.vswitches`` (seeded by
:mod:`emulator.ecs.regions`, one default VPC per region and one default vSwitch per zone).
Unknown ids in filters give an empty page, as the real API does.

Modules: :mod:`~emulator.vpc.vpcs` (DescribeVpcs), :mod:`~emulator.vpc.vswitches` (DescribeVSwitches), sharing
:mod:`~emulator.vpc.common` (owner id, pages, tags).
"""

from . import common, vpcs, vswitches  # noqa: F401  (actions register on import)
