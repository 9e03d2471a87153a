"""HL7 v2 files -> one record per message, with Spark functions only (no Python UDF).

A file may hold one message, many, FHS/BHS batches, MLLP frames (0x0B ... 0x1C 0x0D), CR,
LF or CRLF segment separators and a UTF-8 byte-order mark. The bytes are first read as
ISO-8859-1, which maps every byte to one character, so splitting is byte-exact whatever the
real charset; each message's own bytes are then decoded as its MSH-18 declares (UTF-8 when
none) and quarantined when the bytes disagree (a GB18030 message declared UTF-8, say).

Splitting: a file is cut before and after each MLLP start byte, before each MLLP end byte
and before every segment that starts a message or an envelope (MSH, FHS, BHS, BTS, FTS);
an envelope piece is then cut after its own segment, so segments that follow an envelope
without an MSH become a record of their own (quarantined: no MSH). A message whose MSH was
lost inside a batch would otherwise be glued to the message before it, so each piece is
also cut before a segment that can only open another message (:func:`_lost_msh_cut`):

- an ``EVN`` after a PID, OBR or another EVN (EVN comes once, right after MSH);
- a ``PID`` with set ID 1 after a PID (a repeated patient group numbers its PIDs 2, 3...);
- an ``OBR`` with set ID 1 after an OBR of the same patient group.

The segments from such a cut up to the next MSH or envelope segment are one record,
quarantined with LH-ING-005 (no MSH) and their exact bytes; the message before keeps only
its own segments. Records are messages and such orphans; envelopes and frame bytes are
structure, checked per file with array functions (``transform``, ``filter``,
``aggregate``: no shuffle, no sort):

- LH-ING-005 no MSH; LH-ING-006 bad field separator / encoding characters;
- LH-ING-007 truncated: MSH ends before MSH-12, or an MLLP frame is never closed;
- LH-ING-010 declared charset disagrees with the bytes; LH-ING-009 MSH-9/10/12 empty.

Envelope policy. An envelope error that makes the message boundaries untrustworthy (two
FHS, an FHS that is not the first segment, a BHS inside an open batch) quarantines every
record of the file with LH-ING-008. A trailer count that disagrees (BTS-1 with the records
of its batch, messages and orphans alike; FTS-1 with the file's batches, one when the file
has no BHS) does not: every well-formed message lands, every malformed record is
quarantined on its own, and the trailer itself becomes a *finding*: a quarantine row with
LH-ING-017, the trailer segment's bytes, the declared and found counts, and a negative
``record_index`` (-n for the file's n-th BTS or FTS) so it never collides with a record.
Findings are counted apart from records (``finding`` is true; ``findings_quarantined`` in
``ops.landing_files`` and ``ops.ingest_runs``). See docs/ingest-hl7v2.md.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.sources.encoding import (
    LATIN1,
    declared_kind,
    decode_gb18030,
    is_ascii,
    is_utf8,
    safe_charset_name,
    strip_utf8_bom,
)
from lakehouse.sources.records import LINEAGE

_SPLIT = r"(?=\x0b)|(?<=\x0b)|(?=\x1c)|(?<=[\r\n])(?=(?:MSH|FHS|BHS|BTS|FTS))"
#: The same cuts in a text without MLLP bytes (most files): only the last alternative can
#: match, and the one-character look-ahead fails at once on nearly every position, where
#: the four alternatives above each cost a look-around (the split is ~4x faster).
_SPLIT_UNFRAMED = r"(?=[MBF])(?<=[\r\n])(?=(?:MSH|FHS|BHS|BTS|FTS))"
_HEAD = r"^(\x1c|(?:FHS|BHS|BTS|FTS)[^\r\n]*)(\r\n|\r|\n)?"
#: Candidate cuts inside a piece: before segments that may open a message whose MSH was lost.
_OPENERS = r"(?<=[\r\n])(?=(?:EVN|PID|OBR)[^A-Za-z0-9\r\n])"
#: A cheap test for pieces the walk may cut: an EVN after the first EVN, PID or OBR; a PID
#: with set ID 1 after the first PID; an OBR with set ID 1 after the first OBR. Most messages
#: fail it and skip the walk. Anchored, with an atomic group: linear in the piece's length.
_SEP = r"[^A-Za-z0-9\r\n]"
_MAYBE_LOST = "|".join(
    rf"^(?>[\s\S]*?(?:^|[\r\n]){first}{_SEP})[\s\S]*[\r\n]{later}"
    for first, later in (
        ("(?:EVN|PID|OBR)", f"EVN{_SEP}"),
        ("PID", rf"PID{_SEP}1(?![0-9])"),
        ("OBR", rf"OBR{_SEP}1(?![0-9])"),
    )
)
#: Field 1 (the set ID) of a segment, with the segment's own field separator.
_SET_ID = r"^[A-Z0-9]{3}(.)(\d*)(?:\1|[\r\n]|$)"
#: What a trailer finding's reason says (fixed vocabulary, shown in the quarantine detail).
BTS_COUNT = "BTS-1, messages in the batch"
FTS_COUNT = "FTS-1, batches in the file"

#: Bronze columns this parser fills besides the lineage.
MESSAGE_COLUMNS = (
    "raw_message",
    "encoding",
    "field_separator",
    "encoding_characters",
    "sending_application",
    "sending_facility",
    "receiving_application",
    "receiving_facility",
    "message_datetime",
    "message_type",
    "message_code",
    "trigger_event",
    "control_id",
    "processing_id",
    "version_id",
    "character_set",
)


def _lost_msh_cut(piece: Column) -> Column:
    """The piece cut before each segment that opens a message whose MSH was lost.

    The piece is split before every EVN, PID and OBR segment; one ``aggregate`` walks those
    chunks, keeping which of them the current message already holds, and notes the offset
    of each chunk that must open another message (see the module docstring). A piece with
    no such offset (every well-formed message) comes back whole, without string copies.
    """
    chunks = F.split(piece, _OPENERS)
    init = F.struct(
        F.lit(0).alias("at"),
        F.array().cast("array<int>").alias("cuts"),
        F.lit(False).alias("evn"),
        F.lit(False).alias("pid"),
        F.lit(False).alias("obr"),
    )

    def step(acc: Column, chunk: Column) -> Column:
        name = F.substring(chunk, 1, 3)
        first_id = F.regexp_extract(chunk, _SET_ID, 2) == "1"
        opens = (acc["at"] > 0) & (
            ((name == "EVN") & (acc["evn"] | acc["pid"] | acc["obr"]))
            | ((name == "PID") & first_id & acc["pid"])
            | ((name == "OBR") & first_id & acc["obr"])
        )
        return F.when(
            opens,
            F.struct(
                (acc["at"] + F.length(chunk)).alias("at"),
                F.concat(acc["cuts"], F.array(acc["at"])).alias("cuts"),
                (name == "EVN").alias("evn"),
                (name == "PID").alias("pid"),
                (name == "OBR").alias("obr"),
            ),
        ).otherwise(
            F.struct(
                (acc["at"] + F.length(chunk)).alias("at"),
                acc["cuts"].alias("cuts"),
                (acc["evn"] | (name == "EVN")).alias("evn"),
                (acc["pid"] | (name == "PID")).alias("pid"),
                ((name == "OBR") | (acc["obr"] & (name != "PID"))).alias("obr"),
            )
        )

    def parts(cuts: Column) -> Column:
        starts = F.concat(F.array(F.lit(0)), cuts)
        ends = F.concat(cuts, F.array(F.length(piece)))
        cut = F.transform(
            starts, lambda s, i: F.substring(piece, s + 1, F.element_at(ends, i + 1) - s)
        )
        return F.when(F.size(cuts) == 0, F.array(piece)).otherwise(cut)

    # A one-element transform binds the walk's result to a variable: evaluated once.
    walk = F.flatten(F.transform(F.array(F.aggregate(chunks, init, step)["cuts"]), parts))
    return F.when(_may_hold_lost_msh(piece) & piece.rlike(_MAYBE_LOST), walk).otherwise(
        F.array(piece)
    )


def _may_hold_lost_msh(piece: Column) -> Column:
    """A superset of the pieces :data:`_MAYBE_LOST` matches, found with substring searches.

    Each of its alternatives needs two opener segments: an EVN after an EVN, PID or OBR; a
    second PID; a second OBR. So the piece must hold "EVN" with another "EVN" after it or a
    "PID" or "OBR" before it, or hold "PID" twice, or "OBR" twice (as substrings: the test
    may pass for a piece the regex then rejects, never the other way). None of the three
    names can overlap itself or another. A well-formed ORU (one PID, one OBR) or ADT (EVN
    right after MSH, then one PID) fails it and never reaches the regex, which scans the
    piece three times.

    This runs once per message, inside a lambda, which Spark evaluates interpreted and
    without common subexpressions: each search appears once in the expression, and all are
    byte searches (``contains``, ``substring_index``), not ``instr``/``locate``, which
    count characters as they go.
    """

    def twice(name: str) -> Column:
        # The text before the second occurrence is the whole piece when there is none.
        return F.substring_index(piece, name, 2) != piece

    before_evn = F.substring_index(piece, "EVN", 1)
    evn_late = piece.contains("EVN") & (
        twice("EVN") | before_evn.contains("PID") | before_evn.contains("OBR")
    )
    return evn_late | twice("PID") | twice("OBR")


def _general_pieces(chunk: Column) -> Column:
    """A chunk cut after its envelope segment (or frame end) and before lost MSHs."""
    head = F.regexp_extract(chunk, _HEAD, 0)
    rest = F.substring(chunk, F.length(head) + 1, 2**31 - 1)
    return F.when(F.length(head) > 0, F.concat(F.array(head), _lost_msh_cut(rest))).otherwise(
        _lost_msh_cut(chunk)
    )


def _kind(piece: Column) -> Column:
    return (
        F.when(piece.startswith("MSH"), "MSH")
        .when(piece == "\x0b", "frame_start")
        .when(piece.startswith("\x1c"), "frame_end")
        # Only a piece of at most one character, or one that starts with a blank, can be
        # blank (Java's `$` also matches before one final line terminator): the regex runs
        # for those alone.
        .when(
            ((F.length(piece) <= 1) | F.substring(piece, 1, 1).isin(" ", "\t", "\r", "\n"))
            & piece.rlike(r"^[ \t\r\n]*$"),
            "blank",
        )
        .when(
            piece.startswith("FHS")
            | piece.startswith("BHS")
            | piece.startswith("BTS")
            | piece.startswith("FTS"),
            F.substring(piece, 1, 3),
        )
        .otherwise("orphan")
    )


def _chunk_pieces(chunk: Column, is_open: Column) -> Column:
    """One chunk's pieces, each with its kind and whether its MLLP frame stays open.

    The common chunk, a message that cannot hold a lost MSH, is one piece of kind MSH
    without further tests (this runs once per message, inside ``transform``).
    """

    def element(piece: Column, kind: Column) -> Column:
        return F.struct(piece.alias("piece"), kind.alias("kind"), is_open.alias("open"))

    return F.when(
        chunk.startswith("MSH") & ~_may_hold_lost_msh(chunk),
        F.array(element(chunk, F.lit("MSH"))),
    ).otherwise(F.transform(_general_pieces(chunk), lambda p: element(p, _kind(p))))


def _frame_pieces(frame: Column, is_open: Column) -> Column:
    framed = frame.contains("\x0b") | frame.contains("\x1c")
    chunks = F.when(framed, F.split(frame, _SPLIT)).otherwise(F.split(frame, _SPLIT_UNFRAMED))
    return F.flatten(F.transform(chunks, lambda c: _chunk_pieces(c, is_open)))


def _framed_pieces(text: Column) -> Column:
    """Every piece with its kind and whether it sits in an MLLP frame that never closes.

    A text with MLLP start bytes is first cut before each of them, so a frame is a chunk
    that starts with 0x0B; it is open when no 0x1C follows in it. A text without (most
    files) is one frame, not open. All array functions: no shuffle.
    """
    return F.when(~text.contains("\x0b"), _frame_pieces(text, F.lit(False))).otherwise(
        F.flatten(
            F.transform(
                F.split(text, r"(?=\x0b)"),
                lambda frame: _frame_pieces(
                    frame, frame.startswith("\x0b") & ~frame.contains("\x1c")
                ),
            )
        )
    )


#: Piece kinds that are structure, neither records nor envelope segments.
_LAYOUT = ("blank", "frame_start", "frame_end")
#: Piece kinds that are records.
_RECORDS = ("MSH", "orphan")


def _count(kinds: Column, kind: str) -> Column:
    """How many elements of ``kinds`` are ``kind`` (array functions only, no lambda)."""
    return F.size(kinds) - F.size(F.array_remove(kinds, kind))


def _envelope_state(pieces: Column) -> Column:
    """The walk over a file's piece kinds: whether a BHS comes inside an open batch
    (``nested``), and the trailer ``findings`` (null elements where a trailer agrees).

    ``findings``: each BTS whose count differs from the records (messages and orphans)
    since its BHS, each FTS whose count differs from the file's batches (one without BHS),
    with the trailer's number among the file's BTS and FTS (from 0), its text and counts.

    ``pieces`` must be a column of its own (not an expression): the walk reads a trailer's
    text from it. Spark evaluates the walk interpreted, once per reference, so it runs only
    where it can find something (a file with a trailer, or with two BHS or more: null
    otherwise), and its result must be a column of its own too (see :func:`split_messages`).
    """
    kinds = pieces["kind"]
    bhs = _count(kinds, "BHS")
    trailers = _count(kinds, "BTS") + _count(kinds, "FTS")
    finding_type = "struct<pos:int,piece:string,reason:string,declared:string,found:int>"
    init = F.struct(
        F.lit(0).alias("i"),
        F.lit(0).alias("pos"),
        F.lit(False).alias("open"),
        F.lit(False).alias("nested"),
        F.lit(0).alias("msgs"),
        F.lit(0).alias("batches"),
        F.array().cast(f"array<{finding_type}>").alias("findings"),
    )

    def step(acc: Column, k: Column) -> Column:
        trailer = k.isin("BTS", "FTS")
        text = F.get(pieces, acc["i"])["piece"]
        declared = F.regexp_extract(text, r"^...[^\r\n](\d{1,9})", 1)
        found = F.when(k == "BTS", acc["msgs"]).otherwise(F.greatest(acc["batches"], F.lit(1)))
        finding = F.when(
            trailer & (declared != "") & (declared.cast("int") != found),
            F.struct(
                acc["pos"].alias("pos"),
                text.alias("piece"),
                F.when(k == "BTS", BTS_COUNT).otherwise(FTS_COUNT).alias("reason"),
                declared.alias("declared"),
                found.alias("found"),
            ),
        )
        return F.struct(
            (acc["i"] + 1).alias("i"),
            F.when(trailer, acc["pos"] + 1).otherwise(acc["pos"]).alias("pos"),
            F.when(k == "BHS", True).when(k == "BTS", False).otherwise(acc["open"]).alias("open"),
            (acc["nested"] | ((k == "BHS") & acc["open"])).alias("nested"),
            F.when(k == "BHS", 0)
            .when(k.isin(*_RECORDS), acc["msgs"] + 1)
            .otherwise(acc["msgs"])
            .alias("msgs"),
            F.when(k == "BHS", acc["batches"] + 1).otherwise(acc["batches"]).alias("batches"),
            F.when(trailer, F.concat(acc["findings"], F.array(finding)))
            .otherwise(acc["findings"])
            .alias("findings"),
        )

    return F.when((trailers > 0) | (bhs > 1), F.aggregate(kinds, init, step))


def _envelope(pieces: Column, state: Column) -> tuple[Column, Column]:
    """The file's structural ``problem`` (or null) and its trailer ``findings``, from the
    pieces and the walk's :func:`_envelope_state` (each a column of its own)."""
    kinds = pieces["kind"]
    fhs = _count(kinds, "FHS")
    structural = reduce(F.array_remove, _LAYOUT, kinds)
    problem = (
        F.when(fhs > 1, "more than one FHS")
        .when((fhs == 1) & (F.get(structural, 0) != "FHS"), "FHS is not the first segment")
        .when(F.coalesce(state["nested"], F.lit(False)), "BHS inside an open batch")
    )
    findings = F.filter(F.coalesce(state["findings"], F.array()), lambda f: f.isNotNull())
    return problem, findings


def split_messages(files: DataFrame) -> DataFrame:
    """One row per record (message or orphan segments) or trailer finding of each file.

    Records are numbered 0, 1, ... in file order; a finding (``kind`` = ``finding``) has
    ``record_index`` -n for the file's n-th trailer (BTS or FTS, in file order). Findings are
    only kept when the envelope has no structural problem (then the file is quarantined).
    """
    text = F.decode(strip_utf8_bom(F.col("content")), LATIN1)
    # Each step is a select of its own: a column computed by a lambda (evaluated
    # interpreted, once per reference) is read by the next step several times, which keeps
    # Spark from inlining it (CollapseProject inlines a struct's fields, so none is a struct).
    pieces, kinds = F.col("pieces"), F.col("pieces.kind")
    df = files.select(*LINEAGE, text.alias("text"))
    df = df.select(*LINEAGE, _framed_pieces(F.col("text")).alias("pieces"))
    df = df.select(*LINEAGE, "pieces", _envelope_state(pieces).alias("state"))
    problem, findings = _envelope(pieces, F.col("state"))
    only_records = F.size(kinds) == _count(kinds, "MSH") + _count(kinds, "orphan")
    df = df.select(
        *LINEAGE,
        problem.alias("envelope_problem"),
        findings.alias("findings"),
        F.when(only_records, pieces)
        .otherwise(F.filter(pieces, lambda x: x["kind"].isin(*_RECORDS)))
        .alias("records"),
    )
    as_piece = F.transform(
        F.col("findings"),
        lambda f: F.struct(
            f["piece"].alias("piece"), F.lit("finding").alias("kind"), F.lit(False).alias("open")
        ),
    )
    records = F.col("records")
    with_findings = F.col("envelope_problem").isNull() & (F.size("findings") > 0)
    elements = df.select(
        *LINEAGE,
        "envelope_problem",
        "findings",
        F.size(records).alias("n_records"),
        F.posexplode(F.when(with_findings, F.concat(records, as_piece)).otherwise(records)),
    )
    finding = F.get(F.col("findings"), F.col("pos") - F.col("n_records"))
    is_finding = F.col("col.kind") == "finding"
    return elements.select(
        *LINEAGE,
        F.when(is_finding, F.lit(-1) - finding["pos"])
        .otherwise(F.col("pos"))
        .cast("long")
        .alias("record_index"),
        F.col("col.piece").alias("piece"),
        F.col("col.kind").alias("kind"),
        F.col("col.open").alias("frame_open"),
        F.col("envelope_problem"),
        F.when(is_finding, finding["reason"]).alias("finding_reason"),
        F.when(is_finding, finding["declared"]).alias("finding_declared"),
        F.when(is_finding, finding["found"]).alias("finding_found"),
        F.encode(F.col("col.piece"), LATIN1).alias("raw_bytes"),
    )


def _first_segment(text: Column) -> Column:
    """The text up to its first CR or LF (byte searches, no regex)."""
    return F.substring_index(F.substring_index(text, "\r", 1), "\n", 1)


def _fields(segment: Column, separator: Column) -> Column:
    """``segment`` split on the one-character ``separator``, taken literally.

    A backslash and a character that is not a letter or a digit is the pattern Java's
    ``String.split`` splits on without compiling a regex (its fast path, once per message);
    any other separator (a letter, a digit, none: the message is quarantined anyway) is
    quoted.
    """
    fast = (F.length(separator) == 1) & ~separator.rlike("[A-Za-z0-9]")
    pattern = F.when(fast, F.concat(F.lit("\\"), separator)).otherwise(
        F.concat(F.lit("\\Q"), separator, F.lit("\\E"))
    )
    return F.split(segment, pattern)


def parse_messages(files: DataFrame) -> DataFrame:
    """Files -> records: MSH fields of each message, or the error that quarantines it.

    Trailer findings come out as rows too, with ``finding`` true and an error (they are
    quarantined, and counted apart from records); every other row has ``finding`` false.
    """
    df = split_messages(files)
    piece = F.col("piece")
    fs = F.substring(piece, 4, 1)
    enc = F.expr("substring_index(substring(piece, 5, 10), substring(piece, 4, 1), 1)")
    raw_fields = _fields(_first_segment(piece), fs)
    df = df.select(
        "*",
        fs.alias("fs"),
        enc.alias("enc"),
        F.size(raw_fields).alias("n_fields"),
        F.get(raw_fields, 17).alias("declared"),
    )
    bytes_ = F.col("raw_bytes")
    kind = declared_kind(F.col("declared"))
    utf8, ascii_ = is_utf8(bytes_), is_ascii(bytes_)
    gb_text = decode_gb18030(bytes_)
    df = df.select(
        "*",
        F.when((kind == "utf8") & utf8, "UTF-8")  # the common case first: one validation
        .when(kind == "latin1", LATIN1)
        .when((kind == "gb18030") & ascii_, "US-ASCII")
        .when((kind == "gb18030") & ~utf8 & gb_text.isNotNull(), "GB18030")
        .alias("encoding"),
    )
    text = (
        F.when(F.col("encoding").isin("US-ASCII", "UTF-8"), bytes_.cast("string"))
        .when(F.col("encoding") == LATIN1, piece)
        .when(F.col("encoding") == "GB18030", gb_text)
    )
    found_charset = (
        F.when(utf8, "UTF-8").when(kind == "gb18030", "not GB18030").otherwise("not UTF-8")
    )
    fields = _fields(_first_segment(text), F.col("fs"))

    def msh(n: int) -> Column:
        """MSH-n (MSH-1 is the separator itself, so MSH-n is element n-1 of the split)."""
        return F.get(fields, n - 1)

    comp = F.substring(F.col("enc"), 1, 1)
    type_parts = _fields(msh(9), comp)
    bad_fs = (F.col("fs") == "") | F.col("fs").rlike(r"[A-Za-z0-9\s]")
    bad_enc = (
        ~F.col("enc").rlike(r"^[^A-Za-z0-9\s]{4,5}$")
        | (F.size(F.array_distinct(F.split(F.col("enc"), ""))) != F.length(F.col("enc")))
        | (F.instr(F.col("enc"), F.col("fs")) > 0)
    )
    missing = F.concat_ws(
        ", ",
        *[F.when(F.coalesce(msh(n), F.lit("")) == "", F.lit(f"MSH-{n}")) for n in (9, 10, 12)],
    )
    finding = F.col("kind") == "finding"
    err = (
        F.when(finding, F.lit(ErrorCode.HL7_TRAILER_COUNT_MISMATCH.name))
        .when(F.col("kind") == "orphan", ErrorCode.HL7_NO_MSH.name)
        .when(bad_fs | bad_enc, ErrorCode.HL7_BAD_ENCODING_CHARS.name)
        .when(F.col("n_fields") < 12, ErrorCode.HL7_TRUNCATED.name)
        .when(F.col("frame_open"), ErrorCode.HL7_TRUNCATED.name)
        .when(F.col("encoding").isNull(), ErrorCode.ENCODING_MISMATCH.name)
        .when(missing != "", ErrorCode.HL7_MSH_INVALID.name)
        .when(F.col("envelope_problem").isNotNull(), ErrorCode.HL7_BAD_ENVELOPE.name)
    )
    reason = (
        F.when(finding, F.col("finding_reason"))
        .when(F.col("kind") == "orphan", F.lit(None))
        .when(bad_fs, "field separator")
        .when(bad_enc, "encoding characters")
        .when(F.col("n_fields") < 12, "the MSH segment ends before MSH-12")
        .when(F.col("frame_open"), "an MLLP frame is not closed")
        .when(missing != "", missing)
        .when(F.col("envelope_problem").isNotNull(), F.col("envelope_problem"))
    )
    orphan_found = F.concat(F.lit("starts with "), F.regexp_extract(piece, "^([A-Z0-9]{3})", 1))
    out: list[Column | str] = [
        *LINEAGE,
        "record_index",
        "raw_bytes",
        err.alias("error_name"),
        reason.alias("error_reason"),
        F.when(finding, F.col("finding_found").cast("string"))
        .when(F.col("kind") == "orphan", orphan_found)
        .otherwise(found_charset)
        .alias("error_found"),
        F.when(finding, F.col("finding_declared"))
        .otherwise(safe_charset_name(F.col("declared"), "UTF-8 (none declared)"))
        .alias("error_expected"),
        finding.alias("finding"),
        text.alias("raw_message"),
        F.col("encoding"),
        F.col("fs").alias("field_separator"),
        F.col("enc").alias("encoding_characters"),
        msh(3).alias("sending_application"),
        msh(4).alias("sending_facility"),
        msh(5).alias("receiving_application"),
        msh(6).alias("receiving_facility"),
        msh(7).alias("message_datetime"),
        msh(9).alias("message_type"),
        F.get(type_parts, 0).alias("message_code"),
        F.get(type_parts, 1).alias("trigger_event"),
        msh(10).alias("control_id"),
        msh(11).alias("processing_id"),
        msh(12).alias("version_id"),
        msh(18).alias("character_set"),
    ]
    return df.select(*out)
