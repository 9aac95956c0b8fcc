"""Subscriptions: the date rules of their terms (pure), and later the processes built on them."""
