"""Governance layer: restricted tables of the governance code itself (read by no role)."""
