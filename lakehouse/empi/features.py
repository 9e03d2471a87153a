"""silver.patient rows -> the comparison columns of the linkage model (one row per record).

Everything is a Spark SQL function except pinyin (pandas UDF, see ``names``). The model's
comparisons and the blocking keys read only these columns, so the same SQL runs in DuckDB
(Splink training) and in Spark (scoring at scale).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.empi import identity, names

#: Columns of silver.patient the features read.
INPUT_COLUMNS = (
    "institution_code",
    "source_system",
    "patient_id",
    "patient_key",
    "name",
    "id_card_no",
    "sex_code",
    "birth_date",
    "phone",
    "address",
    "address_province",
    "address_city",
    "address_county",
    "is_deleted",
    "source_updated_at",
)

#: The comparison and blocking columns, in order (the Splink input schema).
FEATURE_COLUMNS = (
    "record_key",
    "patient_key",
    "name_s",
    "name_py",
    "surname_py",
    "id_card",
    "id_ok",
    "id14",
    "birth",
    "birth_year",
    "sex",
    "phone",
    "addr",
    "addr_area",
)


def record_key(institution: Column, source: Column, patient_id: Column) -> Column:
    """``<institution>|<source_system>|<patient_id>``: one silver.patient key as a string."""
    return F.concat_ws("|", institution, source, patient_id)


def _blank_to_null(c: Column) -> Column:
    return F.nullif(F.trim(c), F.lit(""))


def prepare(patients: DataFrame) -> DataFrame:
    """Comparison features of silver.patient-shaped rows (keys and is_deleted kept).

    - ``id_card``: the normalized 身份证号 (null when malformed); ``id_ok``: it passes the
      check character and agrees with the record's own birth date and sex.
    - ``birth``/``sex``: the record's values, or those the valid ID card embeds when the
      record lacks them.
    - ``name_s``: simplified characters; ``name_py``: pinyin key; ``surname_py``: family
      name in pinyin.
    """
    card = identity.normalized_col(F.col("id_card_no"))
    sex_in = F.when(F.col("sex_code").isin("1", "2"), F.col("sex_code"))
    df = patients.select(
        *INPUT_COLUMNS,
        card.alias("id_card"),
        sex_in.alias("_sex"),
    ).withColumn(
        "id_ok", identity.consistent_col(F.col("id_card"), F.col("birth_date"), F.col("_sex"))
    )
    card_birth = F.when(F.col("id_ok"), identity.birth_date_col(F.col("id_card")))
    born = F.coalesce(F.col("birth_date"), card_birth)
    card_sex = F.when(F.col("id_card").isNotNull(), identity.sex_code_col(F.col("id_card")))
    name = _blank_to_null(F.col("name"))
    phone = F.regexp_replace(F.col("phone"), r"\D", "")
    area = F.concat_ws(
        "",
        _blank_to_null(F.col("address_province")),
        _blank_to_null(F.col("address_city")),
        _blank_to_null(F.col("address_county")),
    )
    return df.select(
        record_key(F.col("institution_code"), F.col("source_system"), F.col("patient_id")).alias(
            "record_key"
        ),
        "institution_code",
        "source_system",
        "patient_id",
        "patient_key",
        names.simplified_col(name).alias("name_s"),
        names.pinyin_col(name).alias("name_py"),
        names.surname_col(name).alias("surname_py"),
        "id_card",
        "id_ok",
        F.substring("id_card", 1, 14).alias("id14"),
        F.date_format(born, "yyyyMMdd").alias("birth"),
        F.year(born).cast("string").alias("birth_year"),
        F.coalesce(F.col("_sex"), card_sex).alias("sex"),
        F.when(F.length(phone) >= 7, F.substring(phone, -11, 11)).alias("phone"),
        F.nullif(F.regexp_replace(F.col("address"), r"\s+", ""), F.lit("")).alias("addr"),
        F.nullif(area, F.lit("")).alias("addr_area"),
        F.coalesce(F.col("is_deleted"), F.lit(False)).alias("is_deleted"),
        "source_updated_at",
    )
