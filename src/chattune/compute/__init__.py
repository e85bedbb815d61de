"""Compute targets (local, ray), resource estimates, launchers."""
