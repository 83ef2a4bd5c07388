"""RDS API (2014-08-15): DescribeDBInstances, DescribeBackups, CreateBackup, backup downloads."""
