"""Citations ``table@version:key``.

A citation names the Delta version of the table a tool read and the row's merge key
(``institution_code|source_system|record id``; the record id is last, so it may itself
hold ``|``). Tools read each table pinned at one version, so the cited version is the one
the number came from, and resolving a citation reads that version again.

The governance SQL guard keeps ``VERSION AS OF`` on the table inside its policy subquery
and the access service audits that version (lakehouse/governance/sql_guard.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lakehouse.errors import ErrorCode, error

_CITATION = re.compile(r"^(?P<table>[a-z0-9_]+\.[a-z0-9_]+)@(?P<version>\d+):(?P<key>.+)$")


@dataclass(frozen=True, order=True)
class Citation:
    """One cited row: table, Delta version, merge key values (in the spec's key order)."""

    table: str
    version: int
    key: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.table}@{self.version}:{'|'.join(self.key)}"

    @classmethod
    def parse(cls, text: str, key_width: dict[str, int]) -> Citation:
        """A citation of one of the tables in ``key_width`` (``LH-SRV-002`` otherwise)."""
        m = _CITATION.match(text.strip())
        if m is None:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="not of the form table@version:key")
        table = m["table"]
        if table not in key_width:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="not a table the assistant cites")
        key = tuple(m["key"].split("|", key_width[table] - 1))
        if len(key) != key_width[table] or not all(key):
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="the key has the wrong parts")
        return cls(table, int(m["version"]), key)
