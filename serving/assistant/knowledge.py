"""Knowledge-base retrieval for the assistant: hospital procedures, data definitions and
project documentation, cited by the exact span of the document they come from.

:class:`KnowledgeTool` searches the knowledge base (:mod:`lakehouse.knowledge`, the same
index, ranking and folder permissions as ``GET /api/kb/search``) **as the signed-in user**:
documents in folders the user may not read are neither returned nor counted nor weigh in
the scores, so an empty result says nothing of a closed folder. Each hit comes back as a
:class:`~serving.assistant.tools.CitedRow` whose citation is the passage's span,
``kb:<tree path>:<start>-<end>`` (offsets into the document's text as ``GET /api/kb/doc``
returns it), and whose values hold the passage's plain text. It reads no table: patient
questions stay with :class:`~serving.assistant.tools.DataTools`.

Every search is a ``read`` audit event recorded before the passages are used (``target``
``kb:search``, purpose ``knowledge``, the number of hits, and the query's keyed hash and
length, never its text: :func:`serving.kb.query_detail`); resolving a citation is a
document read (``kb:<path>``), as ``GET /api/kb/doc`` records it.

:meth:`KnowledgeTool.cited` is the verifier: a ``kb:`` citation resolves only when the
document exists, the user may read its folder and the span lies inside its current text
(``LH-AKB-001`` at the citation endpoint otherwise, alike for all three).

:func:`knowledge_query` recognizes a knowledge question ("脓毒性休克的处置流程是什么？",
"What does error LH-SEC-006 mean?", "What is the definition of silver.lab_result.value_std?")
and turns it into search words.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.audit import AuditLog, audited
from lakehouse.governance.sessions import Principal
from lakehouse.knowledge import KbHit, KnowledgeBase
from lakehouse.search import match_spans, normalize, parse_query, snippet
from lakehouse.search.query import MAX_QUERY_CHARS
from serving.assistant.citations import Citation
from serving.assistant.tools import CitedRow, ToolResult
from serving.kb import kb_event, query_detail

#: Characters of a cited passage (the snippet window around the best matches).
PASSAGE = 200
#: An error code of the catalog (lakehouse/errors.py).
_ERROR_CODE = re.compile(r"\bLH-[A-Z]{2,5}-\d{3}\b", re.IGNORECASE)
#: A table (``silver.lab_result``) or column (``silver.lab_result.value_std``) of the lakehouse.
_IDENT = re.compile(
    r"\b(?P<table>(?:audit|bronze|dq|features|gold|governance|ops|silver|vocab)\.[A-Za-z0-9_]+)"
    r"(?:\.(?P<column>[A-Za-z0-9_]+))?\b"
)
#: Words that make a question one about documents whatever else it names ...
_KB_STRONG = re.compile(
    r"\b(?:procedures?|protocols?|SOPs?|guidelines?|polic(?:y|ies)|runbook|definitions?"
    r"|define[sd]?|documentation|knowledge base|quality rules?|error codes?)\b"
    r"|流程|处置|规范|制度|指南|规程|预案|定义|含义|什么意思|知识库|文档|质控规则|错误码|错误代码",
    re.IGNORECASE,
)
#: ... and words that do only when the question names no test, drug or diagnosis of a
#: patient (the planner decides: "血糖如何" about the chart shown is a data question).
_KB_WEAK = re.compile(
    r"\b(?:meaning|what does .{1,80}? mean|how (?:do|should|can) (?:i|we)|how to|docs"
    r"|steps? (?:for|to))\b|步骤|操作|怎么做|怎样|如何|说明",
    re.IGNORECASE,
)
#: Words that frame a question and are no search words (English: whole words).
_FRAME_EN = frozenset(
    {
        "what", "whats", "which", "who", "where", "when", "why", "how", "is", "are", "was",
        "does", "do", "did", "mean", "means", "meaning", "definition", "definitions",
        "define", "defined", "of", "the", "a", "an", "i", "we", "you", "should", "can",
        "could", "would", "please", "tell", "me", "us", "about", "explain", "describe",
        "according", "to", "in", "for", "our", "hospital", "hospitals", "knowledge", "base",
        "kb", "docs", "documentation", "say", "says", "it", "this", "that", "there", "error",
        "code", "column", "table", "field", "procedure", "procedures", "protocol",
        "protocols", "sop", "sops", "guideline", "guidelines", "policy", "find", "show",
        "look", "up", "on", "with", "by", "my", "steps", "step", "handle", "handled",
    }
)  # fmt: skip
_FRAME_ZH = re.compile(
    r"请问|请|是什么意思|什么意思|是什么|什么|有哪些|哪些|怎么做|怎么|怎样|如何|应该|是否"
    r"|根据|按照|知识库|文档|中的|里的|的|吗|呢|吧|呀|啊|我们|医院|错误码|错误代码|字段|表"
)
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_PUNCT = re.compile(r"[?？!！.。,，;；:：、()（）\[\]【】\"“”'‘’「」]+")


def knowledge_query(question: str) -> str | None:
    """The search words of a knowledge question, "" when it is one but names nothing to
    look for, None when it is no knowledge question. Error codes and table or column names
    become quoted phrases (they must occur as written); the rest loses its framing words."""
    codes = [m.group(0).upper() for m in _ERROR_CODE.finditer(question)]
    idents = list(_IDENT.finditer(question))
    if not codes and not idents and not (_KB_STRONG.search(question) or _KB_WEAK.search(question)):
        return None
    parts = [f'"{c}"' for c in dict.fromkeys(codes)]
    for m in idents:
        parts.append(m["table"])
        if m["column"]:
            parts.append(f'"{m["column"]}"')
    if parts:
        return " ".join(dict.fromkeys(parts))
    text = _FRAME_ZH.sub(" ", question)
    text = _EN_WORD.sub(lambda m: " " if m.group(0).lower() in _FRAME_EN else m.group(0), text)
    words = _PUNCT.sub(" ", text).split()
    return " ".join(words)[:200]


def names_documents(question: str) -> bool:
    """Whether the question is about documents whatever else it names: an error code, a
    table or column, or a word such as procedure, definition, 流程, 规范, 定义."""
    return bool(
        _ERROR_CODE.search(question) or _IDENT.search(question) or _KB_STRONG.search(question)
    )


@dataclass(frozen=True)
class KnowledgeTool:
    """The assistant's knowledge-base search and citation check, for one service process."""

    kb: KnowledgeBase
    audit: AuditLog
    #: The key of the queries' audit hashes (one per process, as ``/api/kb`` has its own).
    key: bytes = b""

    @classmethod
    def of(cls, kb: KnowledgeBase, audit: AuditLog) -> KnowledgeTool:
        return cls(kb, audit, secrets.token_bytes(32))

    def search(
        self, who: Principal, query: str, *, limit: int = 3, table: str | None = None
    ) -> ToolResult:
        """The passages of the documents ``who`` may read that best match ``query``, best
        first (at most ``limit``), each cited by its span: the line holding the first
        occurrence of a quoted phrase (an error code's or a column's table row), else the
        window of about :data:`PASSAGE` characters holding the most distinct matches.
        ``table`` (``schema.table``) puts that table's data-dictionary entry first when it
        is among the hits. Audited (fail closed); an empty query is ``LH-KNB-009``."""
        query = query.strip()[:MAX_QUERY_CHARS]
        found: list[KbHit] = []

        def run() -> list[KbHit]:
            found.extend(self.kb.search(who, query, limit=max(limit, 5))[1])
            return found

        audited(self.audit, [kb_event(who, "kb:search", query_detail(self.key, query))], run)
        hits = list(found)
        if table is not None:
            entry = f"project/data-dictionary/{table}"
            hits.sort(key=lambda h: h.path != entry)  # stable: the rest keep their rank
        parsed = parse_query(query, self.kb.index.analyzer)
        rows = []
        for hit in hits[: max(1, limit)]:
            doc = self.kb.index.document(hit.path)
            if doc is None:  # removed between the search and now
                continue
            text = doc.text
            norm = normalize(text) if parsed.phrases else None
            focused = sorted(s for p in parsed.phrases for s in p.find(norm)) if norm else []
            spans = match_spans(text, parsed, self.kb.index.analyzer)
            start, end = _line(text, focused[0]) if focused else (-1, -1)
            if not 0 <= start < end or end - start > 2 * PASSAGE:
                snip = snippet(text, spans, width=PASSAGE)
                start, end = snip.start, snip.end
            values: dict[str, Any] = {
                "path": hit.path,
                "title": hit.title,
                "section": hit.section,
                "passage": text[start:end],
                "start": start,
                "end": end,
                "match_spans": [list(s) for s in spans if start <= s[0] and s[1] <= end],
                "score": hit.score,
            }
            rows.append(CitedRow(Citation.kb(hit.path, start, end), values))
        return ToolResult("knowledge_base", rows)

    def cited(self, who: Principal, citation: Citation) -> dict[str, Any] | None:
        """The cited span of a knowledge-base document as ``who`` may read it (a document
        read, audited): path, title, kind, span and ``span_text``; None when the document
        does not exist, ``who`` may not read its folder, or the span is not inside its
        current text (the three look the same)."""
        if not citation.is_kb or citation.span is None:
            return None
        path = citation.kb_path
        try:
            docs = audited(
                self.audit, [kb_event(who, f"kb:{path}")], lambda: [self.kb.read(who, path)]
            )
        except LakehouseError as exc:
            if exc.code in (ErrorCode.KB_NOT_FOUND, ErrorCode.KB_PATH_INVALID):
                return None
            raise
        doc = docs[0]
        start, end = citation.span
        if end > len(doc.text):
            return None
        return {
            "path": doc.path,
            "title": doc.title,
            "kind": doc.kind,
            "span": [start, end],
            "span_text": doc.text[start:end],
        }


def _line(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """The line holding ``span`` (a Markdown table row: an error code's or a column's whole
    entry), without its line break."""
    start = text.rfind("\n", 0, span[0]) + 1
    end = text.find("\n", span[1])
    return start, len(text) if end < 0 else end


__all__ = ["PASSAGE", "KnowledgeTool", "knowledge_query", "names_documents"]
