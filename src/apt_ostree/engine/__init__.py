"""Transactions on sysroots and queries on repositories; the one engine."""
