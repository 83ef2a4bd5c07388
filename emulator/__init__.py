"""A local Alibaba Cloud (ECS, VPC, RDS, OSS, STS) for the official SDKs. See README.md."""
