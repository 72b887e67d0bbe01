"""Tests of apt-ostreed on a private system bus with the real polkitd, through real clients."""
