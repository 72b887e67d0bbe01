"""The Debian package backend: apt (python3-apt) resolves and fetches, dpkg installs."""
