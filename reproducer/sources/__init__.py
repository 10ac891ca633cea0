"""Readers of live systems that produce service specs."""
