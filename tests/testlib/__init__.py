"""Helpers shared by the test tiers: real .debs, local apt repositories, CLI runners."""
