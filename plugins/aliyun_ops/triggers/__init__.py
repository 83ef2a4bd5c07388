"""Async triggers that wait on Alibaba Cloud without holding a worker slot."""
