"""Knowledge-base documents: files read to text, and the built-in project sections.

:func:`read_file` reads Markdown and plain text (UTF-8, else GB18030, which covers GBK and
GB2312 Chinese documents) and PDF (pypdf's text layer), refusing oversize files, encrypted
or corrupt PDFs and undecodable text with their ``LH-KNB`` codes. :func:`project_documents`
generates the read-only ``project/`` section from the repository: the docs, the data
dictionary (one document per table), the data-quality rules (one per rule) and the
terminology notes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lakehouse.errors import ErrorCode, error

TEXT_SUFFIXES = (".md", ".markdown", ".txt")
SUFFIXES = (*TEXT_SUFFIXES, ".pdf")
_HAN = re.compile(r"[\u3400-\u9fff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


@dataclass(frozen=True)
class Document:
    """A document of the tree: its path (``folder/name``), title, text and content digest
    source (``raw``: the bytes it was read from, hashed to skip unchanged files)."""

    path: str
    title: str
    text: str
    kind: str

    @property
    def folder(self) -> str:
        return self.path.rpartition("/")[0]


def read_file(file: Path, *, max_bytes: int, name: str | None = None) -> tuple[str, str, str]:
    """(title, text, kind) of a Markdown, text or PDF file; ``LH-KNB-003/004/005/006/007``."""
    label = name or file.name
    suffix = file.suffix.lower()
    if suffix not in SUFFIXES:
        raise error(
            ErrorCode.KB_UNSUPPORTED,
            file=label,
            found=suffix or "none",
            expected=", ".join(SUFFIXES),
        )
    size = file.stat().st_size
    if size > max_bytes:
        raise error(ErrorCode.KB_FILE_TOO_LARGE, file=label, found=size, expected=max_bytes)
    raw = file.read_bytes()
    if suffix == ".pdf":
        title, text = read_pdf(raw, label)
        return title or file.stem, text, "pdf"
    text = decode_text(raw, label)
    kind = "markdown" if suffix != ".txt" else "text"
    heading = _HEADING.search(text) if kind == "markdown" else None
    return (heading.group(1).strip() if heading else file.stem), text, kind


def decode_text(raw: bytes, label: str) -> str:
    """UTF-8 (a BOM allowed), else GB18030 when that reads as Chinese text; ``LH-KNB-004``."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="replace")
        if "\ufffd" in text or not _HAN.search(text) or _CONTROL.search(text):
            raise error(ErrorCode.KB_TEXT_ENCODING, file=label) from None
    if _CONTROL.search(text):
        raise error(ErrorCode.KB_TEXT_ENCODING, file=label)
    return text.replace("\r\n", "\n")


def read_pdf(raw: bytes, label: str) -> tuple[str, str]:
    """(title from the metadata or "", text of every page) of a PDF's bytes."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise error(ErrorCode.KB_PDF_ENCRYPTED, file=label)
        pages = [page.extract_text() or "" for page in reader.pages]
        meta: Any = reader.metadata
        title = str(meta.title).strip() if meta is not None and meta.title else ""
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise error(
            ErrorCode.KB_PDF_UNREADABLE, file=label, reason=f"corrupt ({type(exc).__name__})"
        ) from None
    except Exception as exc:
        if getattr(exc, "code", None) is ErrorCode.KB_PDF_ENCRYPTED:
            raise
        raise error(
            ErrorCode.KB_PDF_UNREADABLE, file=label, reason=f"corrupt ({type(exc).__name__})"
        ) from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise error(ErrorCode.KB_PDF_UNREADABLE, file=label, reason="no text layer")
    return title, text


# -- the built-in project section -------------------------------------------------------


def project_documents(home: Path) -> Iterator[Document]:
    """The read-only ``project/`` section from a checkout at ``home`` (what exists of it):
    ``project/docs/...``, ``project/data-dictionary/<table>``,
    ``project/quality-rules/<layer>/<rule id>``, ``project/terminology/terminology.md``."""
    docs = home / "docs"
    special = {"data-dictionary.md", "terminology.md", "error-codes.md", "settings.md"}
    if docs.is_dir():
        for file in sorted(docs.rglob("*.md")):
            rel = file.relative_to(docs).as_posix()
            if rel in special:
                continue
            yield _markdown(f"project/docs/{rel}", file.read_text(encoding="utf-8"), file.stem)
        for name in ("error-codes.md", "settings.md"):
            if (docs / name).is_file():
                text = (docs / name).read_text(encoding="utf-8")
                yield _markdown(f"project/reference/{name}", text, Path(name).stem)
        dictionary = docs / "data-dictionary.md"
        if dictionary.is_file():
            yield from _dictionary(dictionary.read_text(encoding="utf-8"))
        terminology = docs / "terminology.md"
        if terminology.is_file():
            text = terminology.read_text(encoding="utf-8")
            yield _markdown("project/terminology/terminology.md", text, "terminology")
    rules = Path(__file__).resolve().parent.parent / "quality" / "rules"
    yield from _quality_rules(rules)


def _markdown(path: str, text: str, default_title: str) -> Document:
    heading = _HEADING.search(text)
    return Document(path, heading.group(1).strip() if heading else default_title, text, "markdown")


def _dictionary(text: str) -> Iterator[Document]:
    """One document per table section (``## `schema.table` ``) of the data dictionary."""
    sections = re.split(r"^(?=## )", text, flags=re.M)
    for section in sections[1:]:
        first = section.splitlines()[0]
        table = first[3:].strip().strip("`").strip()
        if re.fullmatch(r"[A-Za-z0-9_.]+", table):
            yield Document(f"project/data-dictionary/{table}", table, section, "markdown")


def _quality_rules(folder: Path) -> Iterator[Document]:
    """One document per data-quality rule: its YAML as shipped, titled by id and text."""
    for file in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for rule in data.get("rules", []) or []:
            rid = str(rule.get("id", ""))
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", rid):
                continue
            desc = rule.get("description") or {}
            en = desc.get("en", "") if isinstance(desc, dict) else str(desc)
            zh = desc.get("zh", "") if isinstance(desc, dict) else ""
            title = " / ".join(p for p in (f"{rid}: {en}".strip(), zh) if p)
            body = yaml.safe_dump(rule, allow_unicode=True, sort_keys=False, width=100)
            yield Document(f"project/quality-rules/{file.stem}/{rid}", title, body, "rule")
