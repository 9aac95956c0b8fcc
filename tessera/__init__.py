"""Tessera: an open-source license portal for software vendors."""

__version__ = "0.1.0"
