"""The synthetic hospital's HIS on a real PostgreSQL server (any SQLAlchemy URL works)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lakehouse.synthetic import HospitalConfig, generate
from tests.support.postgres import Postgres


def test_his_database_on_postgresql_matches_sqlite(tmp_path: Path, postgres: Postgres) -> None:
    config = dict(patients=20, sites=3, seed=11)
    generate(tmp_path / "pg", HospitalConfig(**config, his_url=postgres.sqlalchemy_url))  # type: ignore[arg-type]
    generate(tmp_path / "lite", HospitalConfig(**config))  # type: ignore[arg-type]

    pg = sa.create_engine(postgres.sqlalchemy_url)
    lite = sa.create_engine(f"sqlite:///{tmp_path / 'lite' / 'his' / 'his.sqlite'}")
    tables = sa.inspect(lite).get_table_names()
    assert set(tables) <= set(sa.inspect(pg).get_table_names())
    assert {"patients", "visits", "diagnoses"} <= set(tables)
    for table in tables:
        with pg.connect() as a, lite.connect() as b:
            count = f"select count(*) from {table}"
            assert a.execute(sa.text(count)).scalar() == b.execute(sa.text(count)).scalar(), table
    # Landing files do not depend on where the HIS lives.
    for name in ("lis", "emr", "fhir", "csv"):
        pg_files = sorted(p.name for p in (tmp_path / "pg" / "landing" / name).rglob("*"))
        lite_files = sorted(p.name for p in (tmp_path / "lite" / "landing" / name).rglob("*"))
        assert pg_files == lite_files
