"""VPC API (2016-04-28): DescribeVpcs and DescribeVSwitches over the networks ECS seeds."""
