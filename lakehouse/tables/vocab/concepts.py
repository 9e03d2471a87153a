"""``vocab.*``: vocabularies, concepts, relationships, source-to-concept maps, unit conversions
and the review queue of unmapped local codes.

Versioning: a row of ``concept``, ``concept_relationship`` and ``source_to_concept_map`` is
one *version* of its subject, keyed with the ``edition`` that introduced it. Loading a new
edition closes the versions it changes or drops (``valid_end_date`` = the day before the new
edition's ``valid_from``, ``invalid_reason`` U or D) and inserts the new ones; nothing is
ever deleted. A lookup "on a date" takes the version whose validity holds that date.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lakehouse.tables.spec import TableSpec, column

VOCABULARY = TableSpec(
    name="vocab.vocabulary",
    comment="One row per loaded edition of a vocabulary: where it came from (file and SHA-256), "
    "from when it is valid, how many concepts it holds and when it was loaded. Written last "
    "by a load, so an edition listed here is complete.",
    columns=(
        column(
            "vocabulary_id",
            StringType(),
            "Vocabulary id: ICD10 (national clinical edition), ICD10CM, ICD9CM3, LOINC, ATC, "
            "UCUM, GB2261 or LOCAL:<institution>:<LAB|DX|DRUG|PROC>; Athena ids as in the bundle.",
            nullable=False,
        ),
        column(
            "edition",
            StringType(),
            "Edition (version) name, e.g. 国家临床版2.0, 2.76, lakehouse-demo-2026.1.",
            nullable=False,
        ),
        column("vocabulary_name", StringType(), "Human-readable name of the vocabulary."),
        column("valid_from", DateType(), "First day the edition's versions are valid."),
        column("loader", StringType(), "Loader that read the file (icd10cm, athena, ...)."),
        column("source_file", StringType(), "File (or folder) the edition was read from."),
        column(
            "source_sha256", StringType(), "SHA-256 of the file's bytes (folder: of its files)."
        ),
        column(
            "concept_count", LongType(), "Concepts (or map rows) of the vocabulary in the file."
        ),
        column("loaded_at", TimestampType(), "When the edition was loaded."),
    ),
    keys=("vocabulary_id", "edition"),
)

CONCEPT = TableSpec(
    name="vocab.concept",
    comment="Concepts (OMOP CONCEPT-shaped), one row per version: a code of a vocabulary with "
    "its names in English and Chinese, domain, class and standard flag. concept_id is the "
    "Athena id when loaded from an Athena bundle, else a deterministic local id >= "
    "2,000,000,000 derived from (vocabulary_id, concept_code).",
    columns=(
        column(
            "concept_id",
            LongType(),
            "OMOP concept id (Athena) or derived local id.",
            nullable=False,
        ),
        column(
            "edition",
            StringType(),
            "Edition that introduced this version of the concept.",
            nullable=False,
        ),
        column("concept_code", StringType(), "Code as the vocabulary writes it (E11.900, 2345-7)."),
        column("concept_name", StringType(), "Name (English where the source has one)."),
        column("concept_name_zh", StringType(), "Chinese name, where known."),
        column("vocabulary_id", StringType(), "Vocabulary of the code (see vocab.vocabulary)."),
        column(
            "domain_id",
            StringType(),
            "OMOP domain: Condition, Measurement, Drug, Procedure, Unit, Gender.",
        ),
        column(
            "concept_class_id",
            StringType(),
            "Class within the vocabulary (e.g. ICD10 code, Lab Test).",
        ),
        column(
            "standard_concept",
            StringType(),
            "S for a standard concept (a valid mapping target), C classification, null for a "
            "source-only code such as a site's local code.",
        ),
        column("valid_start_date", DateType(), "First day this version is valid."),
        column("valid_end_date", DateType(), "Last day this version is valid (2099-12-31 open)."),
        column(
            "invalid_reason",
            StringType(),
            "Null while valid; U when a later edition changed it, D when it was dropped or "
            "deprecated.",
        ),
    ),
    keys=("concept_id", "edition"),
    cluster_by=("vocabulary_id", "concept_code"),
)

CONCEPT_SYNONYM = TableSpec(
    name="vocab.concept_synonym",
    comment="Further names of concepts (OMOP CONCEPT_SYNONYM-shaped), in Chinese and English; "
    "used by the review queue's candidate ranking (e.g. 血糖 for glucose).",
    columns=(
        column("concept_id", LongType(), "Concept the name belongs to.", nullable=False),
        column("concept_synonym_name", StringType(), "The synonym.", nullable=False),
        column("language", StringType(), "zh or en.", nullable=False),
        column("edition", StringType(), "Edition that supplied the synonym."),
    ),
    keys=("concept_id", "concept_synonym_name", "language"),
)

CONCEPT_RELATIONSHIP = TableSpec(
    name="vocab.concept_relationship",
    comment="Relationships between concepts (OMOP CONCEPT_RELATIONSHIP-shaped), one row per "
    "version: Maps to (non-standard to standard), Is a (child to parent) and their reverses "
    "where a bundle supplies them.",
    columns=(
        column("concept_id_1", LongType(), "Source concept.", nullable=False),
        column("concept_id_2", LongType(), "Target concept.", nullable=False),
        column("relationship_id", StringType(), "Maps to, Is a, Subsumes, ...", nullable=False),
        column("edition", StringType(), "Edition that introduced this version.", nullable=False),
        column("valid_start_date", DateType(), "First day this version is valid."),
        column("valid_end_date", DateType(), "Last day this version is valid (2099-12-31 open)."),
        column("invalid_reason", StringType(), "Null while valid; U changed, D dropped."),
    ),
    keys=("concept_id_1", "relationship_id", "concept_id_2", "edition"),
)

CONCEPT_ANCESTOR = TableSpec(
    name="vocab.concept_ancestor",
    comment="Transitive closure of Is a over current concept versions (OMOP CONCEPT_ANCESTOR-"
    "shaped): every ancestor of a concept with the number of levels between them. Rebuilt per "
    "vocabulary by each load; levels 0 (the concept itself) included.",
    columns=(
        column(
            "ancestor_concept_id",
            LongType(),
            "The ancestor (or the concept itself).",
            nullable=False,
        ),
        column("descendant_concept_id", LongType(), "The descendant.", nullable=False),
        column("min_levels_of_separation", LongType(), "Fewest Is a steps between them."),
        column("max_levels_of_separation", LongType(), "Most Is a steps between them."),
    ),
    keys=("ancestor_concept_id", "descendant_concept_id"),
)

SOURCE_TO_CONCEPT_MAP = TableSpec(
    name="vocab.source_to_concept_map",
    comment="Maps of source codes (a site's local codes, codes of non-standard vocabularies) "
    "to standard concepts (OMOP SOURCE_TO_CONCEPT_MAP-shaped), one row per version, with "
    "validity dates, the edition that introduced it and who mapped it (loader or reviewer).",
    columns=(
        column(
            "source_code",
            StringType(),
            "Code as the source writes it (JY1001, ZD-0301).",
            nullable=False,
        ),
        column(
            "source_vocabulary_id",
            StringType(),
            "Vocabulary of the source code, e.g. LOCAL:A0002:LAB.",
            nullable=False,
        ),
        column("source_code_description", StringType(), "The source's name of the code."),
        column("source_concept_id", LongType(), "Concept id of the source code itself (local id)."),
        column(
            "target_concept_id", LongType(), "Standard concept the code maps to.", nullable=False
        ),
        column("target_vocabulary_id", StringType(), "Vocabulary of the target concept."),
        column(
            "edition",
            StringType(),
            "Edition that introduced this version ('review' for accepted items).",
            nullable=False,
        ),
        column("valid_start_date", DateType(), "First day the map is valid."),
        column("valid_end_date", DateType(), "Last day the map is valid (2099-12-31 open)."),
        column("invalid_reason", StringType(), "Null while valid; D dropped by a later edition."),
        column("mapped_by", StringType(), "Loader name, or reviewer:<user> for accepted items."),
    ),
    keys=("source_vocabulary_id", "source_code", "target_concept_id", "edition"),
    cluster_by=("source_vocabulary_id", "source_code"),
)

UNIT_CONVERSION = TableSpec(
    name="vocab.unit_conversion",
    comment="Unit conversions to each analyte's canonical UCUM unit: value_std = value * "
    "factor + offset. analyte is a LOINC code, or * for a conversion that applies to any "
    "analyte whose canonical unit is to_unit. A row with from_unit = to_unit declares the "
    "analyte's canonical unit.",
    columns=(
        column("analyte", StringType(), "LOINC code of the analyte, or * (any).", nullable=False),
        column("from_unit", StringType(), "UCUM unit converted from.", nullable=False),
        column("to_unit", StringType(), "Canonical UCUM unit of the analyte.", nullable=False),
        column("factor", DoubleType(), "Multiplier.", nullable=False),
        column("offset", DoubleType(), "Added after the multiplication (temperatures)."),
        column("edition", StringType(), "Edition of the conversion table."),
        column("note", StringType(), "Why the factor is what it is (molar mass, ...)."),
    ),
    keys=("analyte", "from_unit"),
)

CANDIDATE = StructType(
    [
        StructField("concept_id", LongType()),
        StructField("concept_code", StringType()),
        StructField("concept_name", StringType()),
        StructField("score", DoubleType()),
        StructField("method", StringType()),
    ]
)

REVIEW_QUEUE = TableSpec(
    name="vocab.review_queue",
    comment="Local codes seen in the sources that map to no standard concept, one row per "
    "(institution, vocabulary, code): how often and when they were seen, the top ranked "
    "candidate concepts, and the review decision. Nothing unmapped is dropped silently.",
    columns=(
        column(
            "institution_code",
            StringType(),
            "Institution whose sources use the code.",
            nullable=False,
        ),
        column(
            "source_vocabulary_id",
            StringType(),
            "Vocabulary of the code (LOCAL:...).",
            nullable=False,
        ),
        column("source_code", StringType(), "The unmapped code.", nullable=False),
        column("source_name", StringType(), "The source's name of the code (most recent seen)."),
        column("occurrences", LongType(), "Rows seen with the code (summed over runs)."),
        column("first_seen_at", TimestampType(), "Earliest time the code was seen."),
        column("last_seen_at", TimestampType(), "Latest time the code was seen."),
        column(
            "candidates",
            ArrayType(CANDIDATE),
            "Up to 5 candidate standard concepts, best first: score in [0, 1] and the method "
            "(ngram, edit, synonym, embedding) that scored it.",
        ),
        column("status", StringType(), "open, accepted or rejected."),
        column("decided_concept_id", LongType(), "Concept chosen when accepted."),
        column("decided_by", StringType(), "Reviewer who decided."),
        column("decided_at", TimestampType(), "When it was decided."),
        column("updated_at", TimestampType(), "When the row last changed."),
    ),
    keys=("institution_code", "source_vocabulary_id", "source_code"),
)
