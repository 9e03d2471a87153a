"""Security and governance: identity, access policies, the SQL guard and the audit log."""
