"""Citations ``table@version:key`` and span citations ``table@version:key:start-end``.

A citation names the Delta version of the table a tool read and the row's merge key
(``institution_code|source_system|record id``; the record id is last, so it may itself
hold ``|``). Tools read each table pinned at one version, so the cited version is the one
the number came from, and resolving a citation reads that version again.

A span citation names a character span ``[start, end)`` of a note's text (the issue's
``note_id:start-end``, with the note's table, version and full merge key in front so it
resolves to that span of the note at that version). Only tables the caller names as span
tables (the note tables) take a span; there a key ending in ``:<digits>-<digits>`` is read
as a span (note ids are file stems, which do not end so).

A knowledge-base citation ``kb:<tree path>:<start>-<end>`` names a span ``[start, end)`` of
a knowledge-base document's text (offsets into the text ``GET /api/kb/doc`` returns;
docs/knowledge-base.md). It is a :class:`Citation` of the pseudo-table ``kb`` (no Delta
table name lacks a dot, so the two never collide): version 0, the tree path as the only key
part and a span that is always there. :meth:`Citation.parse` takes it whatever tables the
caller names; :class:`serving.assistant.knowledge.KnowledgeTool` resolves and verifies it.

The governance SQL guard keeps ``VERSION AS OF`` on the table inside its policy subquery
and the access service audits that version (lakehouse/governance/sql_guard.py).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.knowledge import tree_path

#: The pseudo-table of knowledge-base citations (``kb:<tree path>:<start>-<end>``).
KB = "kb"
_KB_CITATION = re.compile(r"^kb:(?P<path>.+):(?P<start>\d{1,9})-(?P<end>\d{1,9})$")
_SPAN = re.compile(r":(?P<start>\d{1,9})-(?P<end>\d{1,9})$")
_CITATION = re.compile(r"^(?P<table>[a-z0-9_]+\.[a-z0-9_]+)@(?P<version>\d+):(?P<key>.+)$")


@dataclass(frozen=True, order=True)
class Citation:
    """One cited row: table, Delta version, merge key values (in the spec's key order)."""

    table: str
    version: int
    key: tuple[str, ...]
    #: ``(start, end)`` of a span of the row's text (note tables only), else None.
    span: tuple[int, int] | None = None

    def __str__(self) -> str:
        if self.is_kb and self.span is not None:
            return f"{KB}:{self.key[0]}:{self.span[0]}-{self.span[1]}"
        text = f"{self.table}@{self.version}:{'|'.join(self.key)}"
        return text if self.span is None else f"{text}:{self.span[0]}-{self.span[1]}"

    @property
    def row(self) -> Citation:
        """The citation of the whole row (the span dropped)."""
        return Citation(self.table, self.version, self.key)

    @property
    def is_kb(self) -> bool:
        """Whether this cites a span of a knowledge-base document."""
        return self.table == KB

    @property
    def kb_path(self) -> str:
        """The tree path of a knowledge-base citation."""
        return self.key[0]

    @classmethod
    def kb(cls, path: str, start: int, end: int) -> Citation:
        """The citation of ``[start, end)`` of the knowledge-base document at ``path``."""
        return cls(KB, 0, (path,), (start, end))

    @classmethod
    def parse(
        cls, text: str, key_width: dict[str, int], span_tables: Collection[str] = ()
    ) -> Citation:
        """A citation of one of the tables in ``key_width``, with a span where the table
        is one of ``span_tables``, or a knowledge-base span ``kb:<tree path>:<start>-<end>``
        (``LH-SRV-002`` otherwise)."""
        if text.strip().startswith(f"{KB}:"):
            return cls._parse_kb(text.strip())
        m = _CITATION.match(text.strip())
        if m is None:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="not of the form table@version:key")
        table = m["table"]
        if table not in key_width:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="not a table the assistant cites")
        raw, span = m["key"], None
        s = _SPAN.search(raw) if table in span_tables else None
        if s is not None:
            span = (int(s["start"]), int(s["end"]))
            raw = raw[: s.start()]
            if span[1] <= span[0]:
                raise error(ErrorCode.SRV_CITATION_INVALID, reason="the span is empty")
        key = tuple(raw.split("|", key_width[table] - 1))
        if len(key) != key_width[table] or not all(key):
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="the key has the wrong parts")
        return cls(table, int(m["version"]), key, span)

    @classmethod
    def _parse_kb(cls, text: str) -> Citation:
        m = _KB_CITATION.match(text)
        if m is None:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="not of the form kb:path:start-end")
        try:
            path = "/".join(tree_path(m["path"]))
        except LakehouseError:
            raise error(
                ErrorCode.SRV_CITATION_INVALID, reason="not a knowledge-base path"
            ) from None
        if path != m["path"]:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="not a knowledge-base path")
        start, end = int(m["start"]), int(m["end"])
        if end <= start:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="the span is empty")
        return cls.kb(path, start, end)
