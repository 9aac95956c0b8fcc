"""Licenses and their tickets."""
