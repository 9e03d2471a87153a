"""Loaders: vocabulary files into :class:`~lakehouse.terminology.store.Batch` es, then
:func:`~lakehouse.terminology.store.load_edition`.

Every loader reads with Spark (files may be large: an Athena CONCEPT.csv has millions of
rows), checks the file before anything is written, and loads all of it or nothing:

- header (``LH-VOC-002``), encoding (``LH-VOC-003``: undecodable bytes), empty or missing
  file (``LH-VOC-001``), rows without a code (``LH-VOC-005``), the same code listed twice
  with different content (``LH-VOC-004``);
- then the edition checks and writes of :func:`load_edition`.

Formats (header names; Chinese aliases accepted; UTF-8 unless ``encoding`` says otherwise):

- ``load_icd10cm``: CMS order file ``code,billable,short,long`` (``.csv`` or ``.csv.gz``),
  codes written without the dot (A000) and loaded with it (A00.0); Is a to the parent code.
- ``load_code_list``: hospital-supplied ``code,name[,name_en][,name_zh][,synonyms]`` lists:
  ICD-10 国家临床版 (``ICD10``), ICD-9-CM-3 (``ICD9CM3``), ATC, GB2261, UCUM.
- ``load_loinc``: ``Loinc.csv`` (``LOINC_NUM,COMPONENT,LONG_COMMON_NAME``, optional
  ``CLASS,STATUS``, and our ``LONG_COMMON_NAME_ZH,SYNONYMS_ZH`` for a Chinese variant).
- ``load_athena``: an Athena bundle folder (tab-separated ``CONCEPT.csv``, optional
  ``CONCEPT_RELATIONSHIP.csv``, ``CONCEPT_SYNONYM.csv``, ``VOCABULARY.csv``): real concept ids.
- ``load_local_map``: a site's local code map ``institution,local_system,local_code,
  local_name,target_vocabulary,target_code``.
- ``load_unit_conversions``: ``analyte,from_unit,to_unit,factor,offset[,note]``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from lakehouse.errors import ErrorCode, error
from lakehouse.sources.encoding import charsets_enabled
from lakehouse.tables.vocab.concepts import UNIT_CONVERSION
from lakehouse.tables.writer import WriteReport, upsert
from lakehouse.terminology.store import FIRST_DAY, Batch, LoadReport, load_edition
from lakehouse.terminology.units import spelling_key, spellings, ucum_units
from lakehouse.terminology.vocabularies import (
    ATC,
    GB2261,
    ICD9CM3,
    ICD10,
    ICD10CM,
    LOCAL_KINDS,
    LOINC,
    OPEN_END,
    UCUM,
    check_vocabulary_id,
    vocabulary_for,
)

#: Column aliases: our name -> accepted header spellings (compared case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    "code": (
        "code",
        "编码",
        "代码",
        "疾病编码",
        "手术编码",
        "手术操作编码",
        "药品编码",
        "concept_code",
    ),
    "name": ("name", "名称", "疾病名称", "手术名称", "手术操作名称", "药品名称", "concept_name"),
    "name_en": ("name_en", "english_name", "英文名称"),
    "name_zh": ("name_zh", "chinese_name", "中文名称"),
    "synonyms": ("synonyms", "同义词", "别名"),
    "institution": ("institution", "institution_code", "机构编码"),
    "local_system": ("local_system", "本地编码体系"),
    "local_code": ("local_code", "本地编码"),
    "local_name": ("local_name", "本地名称"),
    "target_vocabulary": ("target_vocabulary", "目标编码体系"),
    "target_code": ("target_code", "目标编码"),
}

#: Domain and concept class of the simple code lists.
LIST_KINDS: dict[str, tuple[str, str, str]] = {
    ICD10: ("ICD-10 国家临床版", "Condition", "ICD10 code"),  # V-Z: see icd10_domain
    ICD9CM3: ("ICD-9-CM-3 国家临床版", "Procedure", "ICD9 procedure"),
    ATC: ("WHO ATC", "Drug", "ATC"),
    GB2261: ("GB/T 2261.1 生理性别", "Gender", "Gender"),
    UCUM: ("UCUM", "Unit", "Unit"),
}
#: ICD-10 chapters whose codes OMOP files under Observation, not Condition: XX external
#: causes (V01-Y98) and XXI factors influencing health status and contact with health
#: services (Z00-Z99: a health check-up, a history of, a family history of...).
_ICD10_OBSERVATION = r"^[V-Zv-z]"


def icd10_domain(code: Column) -> Column:
    """OMOP domain of an ICD-10 (or ICD-10-CM) code: Observation for chapters XX and XXI
    (:data:`_ICD10_OBSERVATION`), Condition otherwise."""
    return F.when(code.rlike(_ICD10_OBSERVATION), F.lit("Observation")).otherwise(
        F.lit("Condition")
    )


_KIND_DOMAIN = {"LAB": "Measurement", "DX": "Condition", "DRUG": "Drug", "PROC": "Procedure"}
_SEP = "\u0000"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (name and digest, sorted)."""
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.iterdir() if p.is_file()):
            h.update(f.name.encode() + b"\0" + file_sha256(f).encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _header(path: Path, *, sep: str, encoding: str) -> list[str]:
    if not path.is_file() or path.stat().st_size == 0:
        raise error(ErrorCode.VOCAB_FILE_INVALID, file=path.name, reason="missing or empty")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        first: bytes = fh.readline()
    try:
        text = first.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise error(
            ErrorCode.VOCAB_FILE_ENCODING, file=path.name, expected=encoding, count=1
        ) from None
    text = text.lstrip("\ufeff").rstrip("\r\n")
    if sep == "\t":
        return [c.strip() for c in text.split("\t")]
    return [c.strip() for c in next(csv.reader(io.StringIO(text), delimiter=sep))]


def _resolve(
    header: Sequence[str], required: Sequence[str], optional: Sequence[str], file: str
) -> dict[str, int]:
    """Our column name -> index in the header; ``LH-VOC-002`` when a required one is absent."""
    lower = [h.lower() for h in header]
    found: dict[str, int] = {}
    for name in [*required, *optional]:
        for alias in ALIASES.get(name, (name,)):
            if alias.lower() in lower:
                found[name] = lower.index(alias.lower())
                break
    missing = [r for r in required if r not in found]
    if missing:
        raise error(
            ErrorCode.VOCAB_FILE_HEADER,
            file=file,
            found=", ".join(header)[:200],
            expected=", ".join(required),
        )
    return found


def read_table(
    spark: SparkSession,
    path: Path,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    sep: str = ",",
    encoding: str = "utf-8",
    key: Sequence[str] = ("code",),
) -> DataFrame:
    """A checked file as a DataFrame of string columns named by our names.

    Checks: header, undecodable bytes, rows with an empty key. Exact duplicate rows
    collapse; duplicate keys with different content are ``LH-VOC-004``.
    """
    header = _header(path, sep=sep, encoding=encoding)
    cols = _resolve(header, required, optional, path.name)
    # Positional names: the header was checked above; Spark skips it (no extra job).
    schema = StructType([StructField(f"c{i}", StringType()) for i in range(len(header))])
    reader = spark.read.option("header", True).option("sep", sep).option("encoding", encoding)
    if sep == "\t":
        reader = reader.option("quote", _SEP)  # Athena files are not quoted
    else:
        reader = reader.option("quote", '"').option("escape", '"')
    raw = reader.schema(schema).option("mode", "PERMISSIVE").csv(str(path))
    df = raw.select([F.trim(F.col(f"c{i}")).alias(ours) for ours, i in cols.items()])
    bad_text = F.lit(False)
    for c in df.columns:
        bad_text = bad_text | F.coalesce(F.col(c).contains("\ufffd"), F.lit(False))
    no_key = F.lit(False)
    for k in key:
        no_key = no_key | (F.coalesce(F.col(k), F.lit("")) == "")
    counts = df.agg(  # one pass for every check
        F.count(F.lit(1)).alias("rows"),
        F.sum(bad_text.cast("int")).alias("bad_text"),
        F.sum(no_key.cast("int")).alias("no_key"),
        F.count_distinct(F.struct(*df.columns)).alias("distinct_rows"),
        F.count_distinct(F.struct(*key)).alias("distinct_keys"),
    ).first()
    assert counts is not None
    if not counts["rows"]:
        raise error(ErrorCode.VOCAB_FILE_INVALID, file=path.name, reason="no rows")
    if counts["bad_text"]:
        raise error(
            ErrorCode.VOCAB_FILE_ENCODING,
            file=path.name,
            expected=encoding,
            count=counts["bad_text"],
        )
    if counts["no_key"]:
        raise error(
            ErrorCode.VOCAB_BAD_ROWS,
            file=path.name,
            count=counts["no_key"],
            reason=f"empty {', '.join(key)}",
        )
    if counts["distinct_rows"] != counts["distinct_keys"]:
        raise error(
            ErrorCode.VOCAB_DUPLICATE_CODES,
            file=path.name,
            count=counts["distinct_rows"] - counts["distinct_keys"],
        )
    return df.dropDuplicates()


def _cjk(col: Column) -> Column:
    return col.rlike("[\u4e00-\u9fff]")


def _opt(df: DataFrame, name: str) -> Column:
    return F.col(name) if name in df.columns else F.lit(None).cast("string")


def _synonyms(df: DataFrame, vocab: str) -> DataFrame | None:
    if "synonyms" not in df.columns:
        return None
    return (
        df.select(
            F.lit(vocab).alias("vocabulary_id"),
            F.col("code").alias("concept_code"),
            F.explode(F.split(F.coalesce(F.col("synonyms"), F.lit("")), "[;；|]")).alias(
                "concept_synonym_name"
            ),
        )
        .select(
            "vocabulary_id",
            "concept_code",
            F.trim("concept_synonym_name").alias("concept_synonym_name"),
            F.when(_cjk(F.col("concept_synonym_name")), F.lit("zh"))
            .otherwise(F.lit("en"))
            .alias("language"),
        )
        .where(F.col("concept_synonym_name") != "")
    )


def _concepts(
    df: DataFrame,
    *,
    vocab: str,
    domain: str | Column,
    concept_class: str | Column,
    name: Column,
    name_zh: Column,
    standard: str | Column | None = "S",
    invalid: Column | None = None,
) -> DataFrame:
    def lit(v: str | Column | None) -> Column:
        return v if isinstance(v, Column) else F.lit(v).cast("string")

    return df.select(
        F.lit(None).cast("long").alias("concept_id"),
        F.col("code").alias("concept_code"),
        name.alias("concept_name"),
        name_zh.alias("concept_name_zh"),
        F.lit(vocab).alias("vocabulary_id"),
        lit(domain).alias("domain_id"),
        lit(concept_class).alias("concept_class_id"),
        lit(standard).alias("standard_concept"),
        F.lit(None).cast("date").alias("valid_start_date"),
        F.lit(None).cast("date").alias("valid_end_date"),
        (invalid if invalid is not None else F.lit(None).cast("string")).alias("invalid_reason"),
    )


def read_code_list(
    spark: SparkSession,
    path: Path,
    *,
    vocabulary_id: str,
    edition: str,
    valid_from: date = FIRST_DAY,
    encoding: str = "utf-8",
    vocabulary_name: str | None = None,
    loader: str = "code_list",
) -> Batch:
    """A ``code,name[,name_en][,name_zh][,synonyms]`` list of ICD10, ICD9CM3, ATC, GB2261 or
    UCUM (or a test vocabulary) as one edition. Chinese names go to ``concept_name_zh``;
    ``concept_name`` is the English name where given."""
    vocab = vocabulary_id
    title, domain_name, klass = LIST_KINDS.get(vocab, (vocab, "Observation", "Code"))
    df = read_table(
        spark,
        path,
        required=("code", "name"),
        optional=("name_en", "name_zh", "synonyms"),
        encoding=encoding,
    )
    domain: str | Column = icd10_domain(F.col("code")) if vocab == ICD10 else domain_name
    name = F.coalesce(_opt(df, "name_en"), F.col("name"))
    name_zh = F.coalesce(_opt(df, "name_zh"), F.when(_cjk(F.col("name")), F.col("name")))
    batch = Batch(
        loader=loader,
        source_file=str(path),
        sha256=file_sha256(path),
        edition=edition,
        valid_from=valid_from,
        vocabularies={vocab: vocabulary_name or title},
        concepts=_concepts(
            df, vocab=vocab, domain=domain, concept_class=klass, name=name, name_zh=name_zh
        ),
        synonyms=_synonyms(df, vocab),
    )
    return batch


def _dotted(code: Column) -> Column:
    return F.when(
        F.length(code) > 3, F.concat(F.substring(code, 1, 3), F.lit("."), F.substring(code, 4, 64))
    ).otherwise(code)


def find_icd10cm_file(folder: Path) -> Path:
    """The CMS order file under ``folder`` (``icd10cm-order-*.csv[.gz]``)."""
    if folder.is_file():
        return folder
    found = sorted(folder.rglob("icd10cm-order-*.csv*"))
    if not found:
        raise error(
            ErrorCode.VOCAB_FILE_INVALID,
            file=folder.name,
            reason="no icd10cm-order-*.csv file in the folder",
        )
    return found[-1]


def read_icd10cm(
    spark: SparkSession,
    path: Path,
    *,
    edition: str | None = None,
    valid_from: date = FIRST_DAY,
) -> Batch:
    """ICD-10-CM from the CMS order file (``code,billable,short,long``): every row one code,
    dotted as OMOP writes it, Is a to its parent code (the code one character shorter)."""
    file = find_icd10cm_file(path)
    df = read_table(spark, file, required=("code", "billable", "short", "long"))
    df = df.withColumn("raw", F.col("code")).withColumn("code", _dotted(F.col("raw")))
    name = F.coalesce(F.col("long"), F.col("short"))
    klass = F.concat(
        F.length("raw").cast("string"),
        F.when(F.col("billable") == "1", F.lit("-char billing code")).otherwise(
            F.lit("-char nonbill code")
        ),
    )
    concepts = _concepts(
        df,
        vocab=ICD10CM,
        domain=icd10_domain(F.col("code")),
        concept_class=klass,
        name=name,
        name_zh=F.lit(None).cast("string"),
    )
    parents = df.where(F.length("raw") > 3).select(
        F.lit(ICD10CM).alias("vocabulary_id_1"),
        F.col("code").alias("concept_code_1"),
        F.lit(ICD10CM).alias("vocabulary_id_2"),
        _dotted(F.expr("substring(raw, 1, length(raw) - 1)")).alias("concept_code_2"),
        F.lit("Is a").alias("relationship_id"),
    )
    stem = file.name.split(".")[0].replace("icd10cm-order-", "")
    batch = Batch(
        loader="icd10cm",
        source_file=str(file),
        sha256=file_sha256(file),
        edition=edition or f"icd10cm-{stem}",
        valid_from=valid_from,
        vocabularies={ICD10CM: "ICD-10-CM (CMS/NCHS)"},
        concepts=concepts,
        relationships=parents,
    )
    return batch


def read_loinc(
    spark: SparkSession,
    path: Path,
    *,
    edition: str,
    valid_from: date = FIRST_DAY,
    encoding: str = "utf-8",
) -> Batch:
    """LOINC's ``Loinc.csv``. DEPRECATED codes load as non-standard with invalid_reason D
    and no valid day (they are ``invalid`` on every date); DISCOURAGED stay standard."""
    df = read_table(
        spark,
        path,
        required=("LOINC_NUM", "COMPONENT", "LONG_COMMON_NAME"),
        optional=("CLASS", "STATUS", "LONG_COMMON_NAME_ZH", "SYNONYMS_ZH"),
        encoding=encoding,
        key=("LOINC_NUM",),
    ).withColumnRenamed("LOINC_NUM", "code")
    deprecated = F.upper(F.coalesce(_opt(df, "STATUS"), F.lit(""))) == "DEPRECATED"
    concepts = _concepts(
        df,
        vocab=LOINC,
        domain="Measurement",
        concept_class=F.coalesce(_opt(df, "CLASS"), F.lit("Lab Test")),
        name=F.coalesce(F.col("LONG_COMMON_NAME"), F.col("COMPONENT")),
        name_zh=_opt(df, "LONG_COMMON_NAME_ZH"),
        standard=F.when(~deprecated, F.lit("S")),
        invalid=F.when(deprecated, F.lit("D")),
    ).withColumn(
        "valid_end_date", F.when(F.col("invalid_reason") == "D", F.date_sub(F.lit(valid_from), 1))
    )
    syn = None
    if "SYNONYMS_ZH" in df.columns:
        syn = _synonyms(df.withColumnRenamed("SYNONYMS_ZH", "synonyms"), LOINC)
    batch = Batch(
        loader="loinc",
        source_file=str(path),
        sha256=file_sha256(path),
        edition=edition,
        valid_from=valid_from,
        vocabularies={LOINC: "LOINC"},
        concepts=concepts,
        synonyms=syn,
    )
    return batch


def _athena_date(col: str) -> Column:
    return F.to_date(F.col(col), "yyyyMMdd")


def read_athena(
    spark: SparkSession,
    folder: Path,
    *,
    edition: str | None = None,
    valid_from: date = FIRST_DAY,
) -> Batch:
    """An Athena bundle: real OMOP concept ids, the bundle's own validity dates, its
    relationships and synonyms (Chinese synonyms also fill ``concept_name_zh``)."""
    concept_file = folder / "CONCEPT.csv"
    cols = (
        "concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
        "standard_concept", "concept_code", "valid_start_date", "valid_end_date", "invalid_reason",
    )  # fmt: skip
    df = read_table(spark, concept_file, required=cols, sep="\t", key=("concept_id",))
    vocab_rows = df.select("vocabulary_id").distinct().collect()  # bounded: vocabularies
    vocabs = {str(r[0]): str(r[0]) for r in vocab_rows}
    if (folder / "VOCABULARY.csv").is_file():
        v = read_table(
            spark, folder / "VOCABULARY.csv", required=("vocabulary_id", "vocabulary_name"),
            optional=("vocabulary_version",), sep="\t", key=("vocabulary_id",),
        )  # fmt: skip
        for r in v.collect():  # bounded: one row per vocabulary
            if r["vocabulary_id"] in vocabs:
                vocabs[r["vocabulary_id"]] = r["vocabulary_name"]
    syn = None
    zh_names = None
    if (folder / "CONCEPT_SYNONYM.csv").is_file():
        s = read_table(
            spark, folder / "CONCEPT_SYNONYM.csv",
            required=("concept_id", "concept_synonym_name", "language_concept_id"),
            sep="\t", key=("concept_id", "concept_synonym_name", "language_concept_id"),
        )  # fmt: skip
        # 4182948: Chinese language concept in OMOP.
        lang = F.when(F.col("language_concept_id") == "4182948", F.lit("zh")).otherwise(F.lit("en"))
        s = s.withColumn("language", lang)
        ids = df.select("concept_id", "vocabulary_id", "concept_code")
        syn = s.join(ids, "concept_id").select(
            "vocabulary_id", "concept_code", "concept_synonym_name", "language"
        )
        zh_names = (
            s.where(F.col("language") == "zh")
            .groupBy("concept_id")
            .agg(F.min("concept_synonym_name").alias("zh"))
        )
    concepts = df.select(
        F.col("concept_id").cast("long").alias("concept_id"),
        "concept_code",
        "concept_name",
        "vocabulary_id",
        "domain_id",
        "concept_class_id",
        F.when(F.col("standard_concept") != "", F.col("standard_concept")).alias(
            "standard_concept"
        ),
        _athena_date("valid_start_date").alias("valid_start_date"),
        _athena_date("valid_end_date").alias("valid_end_date"),
        F.when(F.col("invalid_reason") != "", F.col("invalid_reason")).alias("invalid_reason"),
    )
    if zh_names is not None:
        concepts = concepts.join(
            zh_names.select(F.col("concept_id").cast("long").alias("concept_id"), "zh"),
            "concept_id",
            "left",
        ).withColumnRenamed("zh", "concept_name_zh")
    else:
        concepts = concepts.withColumn("concept_name_zh", F.lit(None).cast("string"))
    rels = None
    if (folder / "CONCEPT_RELATIONSHIP.csv").is_file():
        rel_cols = ("concept_id_1", "concept_id_2", "relationship_id")
        dates = ("valid_start_date", "valid_end_date", "invalid_reason")
        rel_df = read_table(
            spark,
            folder / "CONCEPT_RELATIONSHIP.csv",
            required=(*rel_cols, *dates),
            sep="\t",
            key=rel_cols,
        )
        rels = rel_df.select(
            F.col("concept_id_1").cast("long").alias("concept_id_1"),
            F.col("concept_id_2").cast("long").alias("concept_id_2"),
            "relationship_id",
            _athena_date("valid_start_date").alias("valid_start_date"),
            _athena_date("valid_end_date").alias("valid_end_date"),
            F.when(F.col("invalid_reason") != "", F.col("invalid_reason")).alias("invalid_reason"),
        )
    sha = file_sha256(folder)
    batch = Batch(
        loader="athena",
        source_file=str(folder),
        sha256=sha,
        edition=edition or f"athena-{sha[:12]}",
        valid_from=valid_from,
        vocabularies=vocabs,
        concepts=concepts,
        synonyms=syn,
        relationships=rels,
    )
    return batch


def read_local_map(
    spark: SparkSession,
    path: Path,
    *,
    edition: str,
    valid_from: date = FIRST_DAY,
    encoding: str = "utf-8",
) -> Batch:
    """A site's local code map: each local code becomes a (non-standard) concept of
    ``LOCAL:<institution>:<kind>`` and a source_to_concept_map row to its target.

    ``local_system`` is LAB, DX, DRUG or PROC, or a system name :func:`vocabulary_for` knows
    (``A0002-JY``, ``99LIS``); ``target_vocabulary`` a vocabulary id or system name.
    """
    df = read_table(
        spark,
        path,
        required=(
            "institution",
            "local_system",
            "local_code",
            "local_name",
            "target_vocabulary",
            "target_code",
        ),
        encoding=encoding,
        key=("institution", "local_system", "local_code", "target_vocabulary", "target_code"),
    )
    pairs = (
        df.select("institution", "local_system", "target_vocabulary").distinct().collect()
    )  # bounded
    vocab_of: dict[tuple[str, str], str] = {}
    target_of: dict[str, str] = {}
    for p in pairs:
        inst, system, target = p["institution"], p["local_system"], p["target_vocabulary"]
        local = (
            f"LOCAL:{inst}:{system.upper()}"
            if system.upper() in LOCAL_KINDS
            else vocabulary_for(system, institution=inst)
        )
        if local is None or not local.startswith("LOCAL:"):
            raise error(ErrorCode.VOCAB_UNKNOWN, name=system, reason=f"local system in {path.name}")
        vocab_of[(inst, system)] = check_vocabulary_id(local)
        tgt = vocabulary_for(target) or target
        target_of[target] = check_vocabulary_id(tgt)
    vmap = F.create_map(*[F.lit(x) for (i, s), v in vocab_of.items() for x in (f"{i}\u0001{s}", v)])
    tmap = F.create_map(*[F.lit(x) for t, v in target_of.items() for x in (t, v)])
    rows = df.withColumn(
        "vocabulary_id", vmap[F.concat_ws("\u0001", "institution", "local_system")]
    ).withColumn("target_vocabulary_id", tmap[F.col("target_vocabulary")])
    names = rows.groupBy("vocabulary_id", "local_code").agg(
        F.countDistinct("local_name").alias("n")
    )
    clashes = names.where("n > 1").count()
    if clashes:
        raise error(ErrorCode.VOCAB_DUPLICATE_CODES, file=path.name, count=clashes)
    kind = F.element_at(F.split(F.col("vocabulary_id"), ":"), 3)
    domain = F.create_map(*[F.lit(x) for k, d in _KIND_DOMAIN.items() for x in (k, d)])[kind]
    local_codes = rows.select(
        F.col("local_code").alias("code"), "local_name", "vocabulary_id", domain.alias("domain")
    ).dropDuplicates(["vocabulary_id", "code"])
    concepts = local_codes.select(
        F.lit(None).cast("long").alias("concept_id"),
        F.col("code").alias("concept_code"),
        F.col("local_name").alias("concept_name"),
        F.when(_cjk(F.col("local_name")), F.col("local_name")).alias("concept_name_zh"),
        "vocabulary_id",
        F.col("domain").alias("domain_id"),
        F.lit("Local code").alias("concept_class_id"),
        F.lit(None).cast("string").alias("standard_concept"),
        F.lit(None).cast("date").alias("valid_start_date"),
        F.lit(None).cast("date").alias("valid_end_date"),
        F.lit(None).cast("string").alias("invalid_reason"),
    )
    maps = rows.select(
        F.col("local_code").alias("source_code"),
        F.col("vocabulary_id").alias("source_vocabulary_id"),
        F.col("local_name").alias("source_code_description"),
        "target_vocabulary_id",
        "target_code",
    )
    batch = Batch(
        loader="local_map",
        source_file=str(path),
        sha256=file_sha256(path),
        edition=edition,
        valid_from=valid_from,
        vocabularies={
            v: f"{v.split(':')[1]} local {v.split(':')[2]} codes"
            for v in sorted(set(vocab_of.values()))
        },
        concepts=concepts,
        maps=maps,
    )
    return batch


def _charsets(spark: SparkSession, encoding: str) -> AbstractContextManager[None]:
    """Spark 4 reads CSV in UTF-8/16/32 and Latin-1 only, unless legacy Java charsets are
    enabled (GB18030, GBK): for the whole load, as the DataFrames are evaluated lazily."""
    if encoding.lower().replace("-", "") in ("utf8", "utf16", "utf32", "usascii", "iso88591"):
        return nullcontext()
    return charsets_enabled(spark)


def load_code_list(
    spark: SparkSession,
    path: Path,
    *,
    vocabulary_id: str,
    edition: str,
    valid_from: date = FIRST_DAY,
    encoding: str = "utf-8",
    vocabulary_name: str | None = None,
) -> LoadReport:
    """Load a code list (see :func:`read_code_list`) as one edition."""
    with _charsets(spark, encoding):
        return load_edition(
            spark,
            read_code_list(
                spark,
                path,
                vocabulary_id=vocabulary_id,
                edition=edition,
                valid_from=valid_from,
                encoding=encoding,
                vocabulary_name=vocabulary_name,
            ),
        )


def load_icd10cm(
    spark: SparkSession, path: Path, *, edition: str | None = None, valid_from: date = FIRST_DAY
) -> LoadReport:
    """Load ICD-10-CM (see :func:`read_icd10cm`)."""
    return load_edition(spark, read_icd10cm(spark, path, edition=edition, valid_from=valid_from))


def load_loinc(
    spark: SparkSession,
    path: Path,
    *,
    edition: str,
    valid_from: date = FIRST_DAY,
    encoding: str = "utf-8",
) -> LoadReport:
    """Load LOINC (see :func:`read_loinc`)."""
    with _charsets(spark, encoding):
        return load_edition(
            spark,
            read_loinc(spark, path, edition=edition, valid_from=valid_from, encoding=encoding),
        )


def load_athena(
    spark: SparkSession, folder: Path, *, edition: str | None = None, valid_from: date = FIRST_DAY
) -> LoadReport:
    """Load an Athena bundle (see :func:`read_athena`)."""
    return load_edition(spark, read_athena(spark, folder, edition=edition, valid_from=valid_from))


def load_local_map(
    spark: SparkSession,
    path: Path,
    *,
    edition: str,
    valid_from: date = FIRST_DAY,
    encoding: str = "utf-8",
) -> LoadReport:
    """Load a site's local code map (see :func:`read_local_map`)."""
    with _charsets(spark, encoding):
        return load_edition(
            spark,
            read_local_map(spark, path, edition=edition, valid_from=valid_from, encoding=encoding),
        )


def load_unit_conversions(spark: SparkSession, path: Path, *, edition: str) -> WriteReport:
    """``analyte,from_unit,to_unit,factor,offset[,note]`` into ``vocab.unit_conversion``.

    Units must be UCUM codes the spelling table knows (a spelling is accepted and
    normalized); each analyte needs exactly one canonical unit, declared by a row with
    from_unit = to_unit, and every factor must be a non-zero number (``LH-VOC-012``).
    """
    df = read_table(
        spark, path, required=("analyte", "from_unit", "to_unit", "factor"),
        optional=("offset", "note"), key=("analyte", "from_unit"),
    ).collect()  # fmt: skip  # bounded: a conversion table is hundreds of rows
    known, table = ucum_units(), spellings()
    rows = []
    canon: dict[str, set[str]] = {}
    declared: set[str] = set()
    for row in df:
        r = row.asDict()
        units = []
        for u in (r["from_unit"], r["to_unit"]):
            code = u if u in known else table.get(spelling_key(u))
            if code is None:
                raise error(
                    ErrorCode.UNIT_CONVERSION_INVALID,
                    file=path.name,
                    reason="a unit is not a known UCUM code",
                )
            units.append(code)
        try:
            factor = float(r["factor"])
            offset = float(r.get("offset") or 0)
        except (TypeError, ValueError):
            raise error(
                ErrorCode.UNIT_CONVERSION_INVALID,
                file=path.name,
                reason="a factor or offset is not a number",
            ) from None
        if factor == 0:
            raise error(
                ErrorCode.UNIT_CONVERSION_INVALID, file=path.name, reason="a factor is zero"
            )
        analyte = r["analyte"]
        if analyte != "*":
            canon.setdefault(analyte, set()).add(units[1])
            if units[0] == units[1]:
                declared.add(analyte)
        note = r.get("note")
        rows.append((analyte, units[0], units[1], factor, offset, edition, note))
    if any(len(v) != 1 for v in canon.values()):
        raise error(
            ErrorCode.UNIT_CONVERSION_INVALID,
            file=path.name,
            reason="an analyte has more than one target unit",
        )
    if set(canon) - declared:
        raise error(
            ErrorCode.UNIT_CONVERSION_INVALID,
            file=path.name,
            reason="an analyte has no canonical-unit row (from_unit = to_unit)",
        )
    keys = [(a, f) for a, f, *_ in rows]
    if len(set(keys)) != len(keys):
        raise error(
            ErrorCode.VOCAB_DUPLICATE_CODES, file=path.name, count=len(keys) - len(set(keys))
        )
    return upsert(spark, UNIT_CONVERSION, spark.createDataFrame(rows, UNIT_CONVERSION.schema))


__all__ = [
    "OPEN_END",
    "combine",
    "file_sha256",
    "find_icd10cm_file",
    "load_athena",
    "load_code_list",
    "load_icd10cm",
    "load_local_map",
    "load_loinc",
    "load_unit_conversions",
    "read_athena",
    "read_code_list",
    "read_icd10cm",
    "read_local_map",
    "read_loinc",
    "read_table",
]


def combine(batches: list[Batch], *, loader: str, source_file: str, sha256: str) -> Batch:
    """One batch of several (same edition and validity): one write per table instead of
    one per file (the demo's files load as one edition)."""
    first = batches[0]

    def union(frames: list[DataFrame | None]) -> DataFrame | None:
        present = [f for f in frames if f is not None]
        if not present:
            return None
        out = present[0]
        for f in present[1:]:
            out = out.unionByName(f, allowMissingColumns=True)
        return out

    vocabularies: dict[str, str] = {}
    for b in batches:
        vocabularies.update(b.vocabularies)
    return Batch(
        loader=loader,
        source_file=source_file,
        sha256=sha256,
        edition=first.edition,
        valid_from=first.valid_from,
        vocabularies=vocabularies,
        concepts=union([b.concepts for b in batches]),
        synonyms=union([b.synonyms for b in batches]),
        relationships=union([b.relationships for b in batches]),
        maps=union([b.maps for b in batches]),
    )
