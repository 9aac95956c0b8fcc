"""Activation: tickets turned into licenses on containers, signed license certificates, refresh, return, offline.

See the README, "Activation", for the rules; `docs/domain.md` for the domain's terms.
"""
