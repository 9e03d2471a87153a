"""HL7 v2 files -> one record per message, with Spark functions only (no Python UDF).

A file may hold one message, many, FHS/BHS batches, MLLP frames (0x0B ... 0x1C 0x0D), CR,
LF or CRLF segment separators and a UTF-8 byte-order mark. The bytes are first read as
ISO-8859-1, which maps every byte to one character, so splitting is byte-exact whatever the
real charset; each message's own bytes are then decoded as its MSH-18 declares (UTF-8 when
none) and quarantined when the bytes disagree (a GB18030 message declared UTF-8, say).

Splitting: a file is cut before and after each MLLP start byte, before each MLLP end byte
and before every segment that starts a message or an envelope (MSH, FHS, BHS, BTS, FTS);
an envelope piece is then cut after its own segment, so segments that follow an envelope
without an MSH become a record of their own (quarantined: no MSH). Records are messages and
such orphans; envelopes and frame bytes are structure, checked per file with array
functions (``transform``, ``filter``, ``aggregate``: no shuffle, no sort):

- LH-ING-005 no MSH; LH-ING-006 bad field separator / encoding characters;
- LH-ING-007 truncated: MSH ends before MSH-12, or an MLLP frame is never closed;
- LH-ING-010 declared charset disagrees with the bytes; LH-ING-009 MSH-9/10/12 empty;
- LH-ING-008 the file's envelope is invalid (two FHS, FHS not first, a BHS inside an open
  batch, a BTS count that differs from the batch's messages): every record of the file.
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
_HEAD = r"^(\x1c|(?:FHS|BHS|BTS|FTS)[^\r\n]*)(\r\n|\r|\n)?"
_FIRST_SEGMENT = r"^([^\r\n]*)"

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


def _pieces(text: Column) -> Column:
    """The text cut into messages, envelope segments, frame bytes and orphans."""
    chunks = F.split(text, _SPLIT)

    def cut(c: Column) -> Column:
        head = F.regexp_extract(c, _HEAD, 0)
        rest = F.substring(c, F.length(head) + 1, 2**31 - 1)
        return F.when(F.length(head) > 0, F.array(head, rest)).otherwise(F.array(c))

    return F.flatten(F.transform(chunks, cut))


def _kind(piece: Column) -> Column:
    return (
        F.when(piece == "\x0b", "frame_start")
        .when(piece.startswith("\x1c"), "frame_end")
        .when(piece.rlike(r"^[ \t\r\n]*$"), "blank")
        .when(piece.rlike("^(FHS|BHS|BTS|FTS)"), F.substring(piece, 1, 3))
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


def _envelope_problem(pieces: Column) -> Column:
    """The file's envelope problem (two FHS, FHS not first, nested BHS, BTS count), or null."""
    kinds = F.transform(pieces, lambda x: x["kind"])
    structural = F.filter(kinds, lambda k: ~k.isin("blank", "frame_start", "frame_end"))
    fhs = F.size(F.filter(kinds, lambda k: k == "FHS"))
    init = F.struct(
        F.lit(False).alias("open"),
        F.lit(False).alias("nested"),
        F.lit(0).alias("msgs"),
        F.lit(False).alias("count_bad"),
    )

    def step(acc: Column, x: Column) -> Column:
        k = x["kind"]
        declared = F.regexp_extract(x["piece"], r"^BTS.(\d{1,9})", 1)
        bad_count = (k == "BTS") & (declared != "") & (declared.cast("int") != acc["msgs"])
        return F.struct(
            F.when(k == "BHS", True).when(k == "BTS", False).otherwise(acc["open"]).alias("open"),
            (acc["nested"] | ((k == "BHS") & acc["open"])).alias("nested"),
            F.when(k == "BHS", 0)
            .when(k == "MSH", acc["msgs"] + 1)
            .otherwise(acc["msgs"])
            .alias("msgs"),
            (acc["count_bad"] | bad_count).alias("count_bad"),
        )

    state = F.aggregate(pieces, init, step)
    return (
        F.when(fhs > 1, "more than one FHS")
        .when((fhs == 1) & (F.get(structural, 0) != "FHS"), "FHS is not the first segment")
        .when(state["nested"], "BHS inside an open batch")
        .when(state["count_bad"], "BTS message count differs from the batch")
    )


def split_messages(files: DataFrame) -> DataFrame:
    """One row per record (message or orphan segments) with its bytes and position."""
    text = F.decode(strip_utf8_bom(F.col("content")), LATIN1)
    framed = files.select(*LINEAGE, _framed_pieces(text).alias("pieces"))
    framed = framed.select(
        *LINEAGE,
        _envelope_problem(F.col("pieces")).alias("envelope_problem"),
        F.filter("pieces", lambda x: x["kind"].isin("MSH", "orphan")).alias("records"),
    )
    records = framed.select(
        *LINEAGE,
        "envelope_problem",
        F.posexplode("records").alias("record_index", "r"),
    )
    return records.select(
        *LINEAGE,
        F.col("record_index").cast("long").alias("record_index"),
        F.col("r.piece").alias("piece"),
        F.col("r.kind").alias("kind"),
        F.col("r.open").alias("frame_open"),
        F.col("envelope_problem"),
        F.encode(F.col("r.piece"), LATIN1).alias("raw_bytes"),
    )


def _fields(segment: Column, separator: Column) -> Column:
    return F.split(segment, F.concat(F.lit("\\Q"), separator, F.lit("\\E")))


def parse_messages(files: DataFrame) -> DataFrame:
    """Files -> records: MSH fields of each message, or the error that quarantines it."""
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
    err = (
        F.when(F.col("kind") == "orphan", F.lit(ErrorCode.HL7_NO_MSH.name))
        .when(bad_fs | bad_enc, ErrorCode.HL7_BAD_ENCODING_CHARS.name)
        .when(F.col("n_fields") < 12, ErrorCode.HL7_TRUNCATED.name)
        .when(F.col("frame_open"), ErrorCode.HL7_TRUNCATED.name)
        .when(F.col("encoding").isNull(), ErrorCode.ENCODING_MISMATCH.name)
        .when(missing != "", ErrorCode.HL7_MSH_INVALID.name)
        .when(F.col("envelope_problem").isNotNull(), ErrorCode.HL7_BAD_ENVELOPE.name)
    )
    reason = (
        F.when(F.col("kind") == "orphan", F.lit(None))
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
        F.when(F.col("kind") == "orphan", orphan_found)
        .otherwise(found_charset)
        .alias("error_found"),
        safe_charset_name(F.col("declared"), "UTF-8 (none declared)").alias("error_expected"),
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
