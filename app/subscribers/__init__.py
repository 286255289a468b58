"""Subscribers: validated records, uniqueness, search, versions and history."""
