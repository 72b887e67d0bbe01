"""Deployment tests on directory sysroots, checked with the real ``ostree`` CLI."""
