"""Sensors for Alibaba Cloud resources (deferrable by default)."""
