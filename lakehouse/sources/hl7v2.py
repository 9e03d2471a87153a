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
_FIRST_SEGMENT = r"^([^\r\n]*)"
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
    names can overlap itself or another, so each search starts just past the last one found.
    A well-formed ORU (one PID, one OBR) or ADT (EVN right after MSH, then one PID) fails
    it and never reaches the regex, which scans the piece three times.

    Lambdas are evaluated interpreted, without common subexpressions: each search appears
    once in the expression, so none runs twice.
    """

    def twice(name: str) -> Column:
        return F.call_function("locate", F.lit(name), piece, F.instr(piece, name) + 1) > 0

    before_evn = F.substring_index(piece, "EVN", 1)
    evn_late = (F.instr(piece, "EVN") > 0) & (
        twice("EVN") | (F.instr(before_evn, "PID") > 0) | (F.instr(before_evn, "OBR") > 0)
    )
    return evn_late | twice("PID") | twice("OBR")


def _pieces(text: Column) -> Column:
    """The text cut into messages, envelope segments, frame bytes and orphans."""
    framed = (F.instr(text, "\x0b") > 0) | (F.instr(text, "\x1c") > 0)
    chunks = F.when(framed, F.split(text, _SPLIT)).otherwise(F.split(text, _SPLIT_UNFRAMED))

    def cut(c: Column) -> Column:
        head = F.regexp_extract(c, _HEAD, 0)
        rest = F.substring(c, F.length(head) + 1, 2**31 - 1)
        return F.when(F.length(head) > 0, F.array(head, rest)).otherwise(F.array(c))

    pieces = F.flatten(F.transform(chunks, cut))
    return F.flatten(F.transform(pieces, _lost_msh_cut))


def _kind(piece: Column) -> Column:
    return (
        F.when(piece == "\x0b", "frame_start")
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
        .when(piece.startswith("MSH"), "MSH")
        .otherwise("orphan")
    )


def _framed_pieces(text: Column) -> Column:
    """Every piece with its kind and whether it sits in an MLLP frame that never closes.

    The text is first cut before each frame start byte, so a frame is a chunk that starts
    with 0x0B; it is open when no 0x1C follows in it. All array functions: no shuffle.
    """

    def per_frame(chunk: Column) -> Column:
        is_open = chunk.startswith("\x0b") & (F.instr(chunk, "\x1c") == 0)
        return F.transform(
            _pieces(chunk),
            lambda p: F.struct(p.alias("piece"), _kind(p).alias("kind"), is_open.alias("open")),
        )

    return F.flatten(F.transform(F.split(text, r"(?=\x0b)"), per_frame))


def _envelope(pieces: Column) -> Column:
    """The file's envelope: ``problem`` (structural, or null) and trailer ``findings``.

    ``problem``: two FHS, an FHS that is not the first segment, a BHS inside an open batch.
    ``findings``: each BTS whose count differs from the records (messages and orphans)
    since its BHS, each FTS whose count differs from the file's batches (one without BHS),
    with the trailer's number among the file's BTS and FTS (from 0), its text and counts.
    """
    kinds = F.transform(pieces, lambda x: x["kind"])
    structural = F.filter(kinds, lambda k: ~k.isin("blank", "frame_start", "frame_end"))
    fhs = F.size(F.filter(kinds, lambda k: k == "FHS"))
    finding_type = "struct<pos:int,piece:string,reason:string,declared:string,found:int>"
    init = F.struct(
        F.lit(0).alias("pos"),
        F.lit(False).alias("open"),
        F.lit(False).alias("nested"),
        F.lit(0).alias("msgs"),
        F.lit(0).alias("batches"),
        F.array().cast(f"array<{finding_type}>").alias("findings"),
    )

    def step(acc: Column, x: Column) -> Column:
        k = x["kind"]
        trailer = k.isin("BTS", "FTS")
        declared = F.when(trailer, F.regexp_extract(x["piece"], r"^...[^\r\n](\d{1,9})", 1))
        found = F.when(k == "BTS", acc["msgs"]).otherwise(F.greatest(acc["batches"], F.lit(1)))
        finding = F.when(
            trailer & (declared != "") & (declared.cast("int") != found),
            F.struct(
                acc["pos"].alias("pos"),
                x["piece"].alias("piece"),
                F.when(k == "BTS", BTS_COUNT).otherwise(FTS_COUNT).alias("reason"),
                declared.alias("declared"),
                found.alias("found"),
            ),
        )
        return F.struct(
            F.when(trailer, acc["pos"] + 1).otherwise(acc["pos"]).alias("pos"),
            F.when(k == "BHS", True).when(k == "BTS", False).otherwise(acc["open"]).alias("open"),
            (acc["nested"] | ((k == "BHS") & acc["open"])).alias("nested"),
            F.when(k == "BHS", 0)
            .when(k.isin("MSH", "orphan"), acc["msgs"] + 1)
            .otherwise(acc["msgs"])
            .alias("msgs"),
            F.when(k == "BHS", acc["batches"] + 1).otherwise(acc["batches"]).alias("batches"),
            F.when(finding.isNotNull(), F.concat(acc["findings"], F.array(finding)))
            .otherwise(acc["findings"])
            .alias("findings"),
        )

    state = F.aggregate(pieces, init, step)
    problem = (
        F.when(fhs > 1, "more than one FHS")
        .when((fhs == 1) & (F.get(structural, 0) != "FHS"), "FHS is not the first segment")
        .when(state["nested"], "BHS inside an open batch")
    )
    return F.struct(problem.alias("problem"), state["findings"].alias("findings"))


#: One element per record or finding of a file (see :func:`split_messages`).
_ELEMENT = (
    "struct<record_index:bigint,piece:string,kind:string,open:boolean,"
    "reason:string,declared:string,found:int>"
)


def split_messages(files: DataFrame) -> DataFrame:
    """One row per record (message or orphan segments) or trailer finding of each file.

    Records are numbered 0, 1, ... in file order; a finding (``kind`` = ``finding``) has
    ``record_index`` -n for the file's n-th trailer (BTS or FTS, in file order). Findings are
    only kept when the envelope has no structural problem (then the file is quarantined).
    """
    text = F.decode(strip_utf8_bom(F.col("content")), LATIN1)
    framed = files.select(*LINEAGE, _framed_pieces(text).alias("pieces"))
    framed = framed.select(*LINEAGE, "pieces", _envelope(F.col("pieces")).alias("env"))
    records = F.transform(
        F.filter("pieces", lambda x: x["kind"].isin("MSH", "orphan")),
        lambda r, i: F.struct(
            i.cast("long").alias("record_index"),
            r["piece"].alias("piece"),
            r["kind"].alias("kind"),
            r["open"].alias("open"),
            F.lit(None).cast("string").alias("reason"),
            F.lit(None).cast("string").alias("declared"),
            F.lit(None).cast("int").alias("found"),
        ),
    )
    findings = F.transform(
        F.col("env.findings"),
        lambda f: F.struct(
            (F.lit(-1) - f["pos"]).cast("long").alias("record_index"),
            f["piece"].alias("piece"),
            F.lit("finding").alias("kind"),
            F.lit(False).alias("open"),
            f["reason"].alias("reason"),
            f["declared"].alias("declared"),
            f["found"].alias("found"),
        ),
    )
    elements = F.when(
        F.col("env.problem").isNull() & (F.size("env.findings") > 0),
        F.concat(records, findings.cast(f"array<{_ELEMENT}>")),
    ).otherwise(records)
    rows = framed.select(
        *LINEAGE, F.col("env.problem").alias("envelope_problem"), F.explode(elements).alias("r")
    )
    return rows.select(
        *LINEAGE,
        F.col("r.record_index").alias("record_index"),
        F.col("r.piece").alias("piece"),
        F.col("r.kind").alias("kind"),
        F.col("r.open").alias("frame_open"),
        F.col("envelope_problem"),
        F.col("r.reason").alias("finding_reason"),
        F.col("r.declared").alias("finding_declared"),
        F.col("r.found").alias("finding_found"),
        F.encode(F.col("r.piece"), LATIN1).alias("raw_bytes"),
    )


def _fields(segment: Column, separator: Column) -> Column:
    return F.split(segment, F.concat(F.lit("\\Q"), separator, F.lit("\\E")))


def parse_messages(files: DataFrame) -> DataFrame:
    """Files -> records: MSH fields of each message, or the error that quarantines it.

    Trailer findings come out as rows too, with ``finding`` true and an error (they are
    quarantined, and counted apart from records); every other row has ``finding`` false.
    """
    df = split_messages(files)
    piece = F.col("piece")
    fs = F.substring(piece, 4, 1)
    enc = F.expr("substring_index(substring(piece, 5, 10), substring(piece, 4, 1), 1)")
    raw_fields = _fields(F.regexp_extract(piece, _FIRST_SEGMENT, 1), fs)
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
    fields = _fields(F.regexp_extract(text, _FIRST_SEGMENT, 1), F.col("fs"))

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
