"""Temporal workflows: deterministic, no I/O; they order, wait and decide, activities do the work."""
