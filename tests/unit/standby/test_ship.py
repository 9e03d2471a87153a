"""The standby shipper on hand-written Delta logs (no Spark): ordering, torn commits,
restarts, checkpoints, replaced tables, log gaps, locks, promotion and the metrics text.

Real Delta tables are shipped and read by Spark in tests/integration/standby.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from pathlib import Path

import pytest

from lakehouse.backup.delta_log import z85_decode
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings, StandbySettings
from lakehouse.standby import Shipper, read_status, render_metrics, site
from lakehouse.standby.failover import check_table
from lakehouse.standby.metrics import LagHistogram
from lakehouse.standby.ship import commit_name
from lakehouse.standby.site import PROMOTE_REQUEST, PROMOTED
from tests.conftest import REPO
from tests.unit.backup.test_delta_log import z85_encode


def config(tmp_path: Path, **standby: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        home=REPO,
        data_dir=tmp_path / "p",
        standby=StandbySettings(target=tmp_path / "s", **standby),  # type: ignore[arg-type]
    )


def table(cfg: Settings, rel: str = "silver.db/t") -> Path:
    path = Path(cfg.warehouse) / rel
    (path / "_delta_log").mkdir(parents=True, exist_ok=True)
    return path


def commit(t: Path, version: int, *actions: dict[str, object]) -> Path:
    path = t / "_delta_log" / commit_name(version)
    path.write_text("\n".join(json.dumps(a) for a in ({"commitInfo": {"timestamp": 1}}, *actions)))
    return path


def add(path: str, size: int, dv: dict[str, object] | None = None) -> dict[str, object]:
    item: dict[str, object] = {"path": path, "size": size, "dataChange": True}
    if dv:
        item["deletionVector"] = dv
    return {"add": item}


def standby_commits(cfg: Settings, rel: str = "silver.db/t") -> list[int]:
    log = site(cfg).warehouse / rel / "_delta_log"
    return sorted(int(p.name[:20]) for p in log.glob("*.json")) if log.is_dir() else []


def test_files_first_then_the_commit_and_a_restart_resumes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    t = table(cfg)
    (t / "a.parquet").write_bytes(b"a" * 10)
    c0 = commit(t, 0, {"metaData": {"id": "x"}}, add("a.parquet", 10))
    os.utime(c0, (1_000_000_000, 1_000_000_000))
    dv_uuid = uuid.uuid4()
    dv = {"storageType": "u", "pathOrInlineDv": "ab" + z85_encode(dv_uuid.bytes), "offset": 1}
    assert z85_decode(str(dv["pathOrInlineDv"])[2:]) == dv_uuid.bytes
    commit(t, 1, add("ward%3DICU/b.parquet", 5, dv), {"remove": {"path": "a.parquet"}})
    with Shipper(cfg) as shipper:
        report = shipper.cycle()
        assert report.versions == 1
        state = shipper.tables["silver.t"]
        assert state.error is not None
        assert state.error["code"] == ErrorCode.STANDBY_FILE_MISSING.value.id
        assert state.lag_s > 0
        (t / "ab").mkdir()
        (t / "ab" / f"deletion_vector_{dv_uuid}.bin").write_bytes(b"dv")
        (t / "ward=ICU").mkdir()
        (t / "ward=ICU" / "b.parquet").write_bytes(b"b" * 4)  # shorter than the log says
        shipper.cycle()
        assert "4 bytes on the primary, the log says 5" in state.error["message"]
    assert standby_commits(cfg) == [0]
    status = read_status(cfg)
    assert status is not None
    assert status["tables"]["silver.t"]["standby_version"] == 0
    assert status["healthy"] is False
    (t / "ward=ICU" / "b.parquet").write_bytes(b"b" * 5)
    with Shipper(cfg) as shipper:  # a restart: state is the standby's own log
        assert shipper.cycle().versions == 1
        assert shipper.tables["silver.t"].error is None
    dst = site(cfg).warehouse / "silver.db/t"
    assert standby_commits(cfg) == [0, 1]
    for rel in ("a.parquet", "ward=ICU/b.parquet", f"ab/deletion_vector_{dv_uuid}.bin"):
        assert (dst / rel).read_bytes() == (t / rel).read_bytes()
    shipped = dst / "_delta_log" / commit_name(0)
    assert shipped.read_bytes() == c0.read_bytes()
    assert shipped.stat().st_mtime == 1_000_000_000  # Delta dates versions by the commit file
    assert not any(site(cfg).staging.iterdir())


def test_torn_and_temporary_commits_are_never_shipped(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    t = table(cfg)
    commit(t, 0, {"metaData": {"id": "x"}})
    (t / "_delta_log" / f".{commit_name(1)}.{uuid.uuid4()}.tmp").write_text('{"add": {"pa')
    with Shipper(cfg) as shipper:
        shipper.cycle()
        assert shipper.tables["silver.t"].error is None  # a temporary name is not a commit
        (t / "_delta_log" / commit_name(1)).write_text('{"commitInfo": {}}\n{"add": {"path"')
        shipper.cycle()
        error = shipper.tables["silver.t"].error
        assert error is not None
        assert error["code"] == ErrorCode.STANDBY_COMMIT_UNREADABLE.value.id
        assert standby_commits(cfg) == [0]
        commit(t, 1, {"metaData": {"id": "x"}})
        shipper.cycle()
    assert standby_commits(cfg) == [0, 1]


def test_checkpoints_follow_their_commit_and_last_checkpoint_its_checkpoint(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    t = table(cfg)
    log = t / "_delta_log"
    for v in range(3):
        commit(t, v, {"metaData": {"id": "x"}})
    whole = b"PAR1" + b"\0" * 8 + b"PAR1"
    (log / f"{1:020d}.checkpoint.parquet").write_bytes(whole)
    (log / f"{2:020d}.checkpoint.0000000001.0000000002.parquet").write_bytes(whole)  # 1 of 2
    (log / f"{1:020d}.crc").write_text('{"tableSizeBytes": 0}')
    (log / "_last_checkpoint").write_text('{"version": 2, "size": 1, "parts": 2}')
    with Shipper(cfg) as shipper:
        shipper.cycle()
        dst = site(cfg).warehouse / "silver.db/t/_delta_log"
        assert (dst / f"{1:020d}.checkpoint.parquet").read_bytes() == whole
        assert (dst / f"{1:020d}.crc").exists()
        assert not list(dst.glob(f"{2:020d}.checkpoint.*"))  # an incomplete group
        assert not (dst / "_last_checkpoint").exists()  # names a checkpoint not here
        (log / f"{2:020d}.checkpoint.0000000002.0000000002.parquet").write_bytes(whole)
        shipper.cycle()
    assert len(list(dst.glob(f"{2:020d}.checkpoint.*"))) == 2
    assert json.loads((dst / "_last_checkpoint").read_text())["version"] == 2


def test_new_tables_are_picked_up_and_filters_apply(tmp_path: Path) -> None:
    cfg = config(tmp_path, exclude=["scratch.*"])
    commit(table(cfg, "silver.db/a"), 0, {"metaData": {"id": "a"}})
    commit(table(cfg, "scratch.db/b"), 0, {"metaData": {"id": "b"}})
    with Shipper(cfg) as shipper:
        shipper.cycle()
        assert set(shipper.tables) == {"silver.a"}
        commit(table(cfg, "plain"), 0, {"metaData": {"id": "c"}})  # the default schema
        shipper.cycle()
        assert set(shipper.tables) == {"silver.a", "default.plain"}
    assert standby_commits(cfg, "plain") == [0]


def test_a_replaced_table_is_moved_aside_and_shipped_again(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    t = table(cfg)
    commit(t, 0, {"metaData": {"id": "old"}})
    commit(t, 1, {"metaData": {"id": "old"}})
    with Shipper(cfg) as shipper:
        shipper.cycle()
        for p in (t / "_delta_log").iterdir():  # DROP TABLE; CREATE TABLE at the same path
            p.unlink()
        commit(t, 0, {"metaData": {"id": "new"}})
        shipper.cycle()
    assert standby_commits(cfg) == [0]
    dst = site(cfg).warehouse / "silver.db/t/_delta_log" / commit_name(0)
    assert '"new"' in dst.read_text()
    assert len(list((site(cfg).meta / "replaced").iterdir())) == 1


def test_a_gap_in_the_primary_log_is_reported(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    t = table(cfg)
    commit(t, 0, {"metaData": {"id": "x"}})
    commit(t, 2, {"metaData": {"id": "x"}})  # 1 cleaned up before the standby got it
    with Shipper(cfg) as shipper:
        shipper.cycle()
        error = shipper.tables["silver.t"].error
    assert error is not None
    assert error["code"] == ErrorCode.STANDBY_LOG_GAP.value.id


def test_one_shipper_per_standby_and_a_failover_request_stops_it(tmp_path: Path) -> None:
    cfg = config(tmp_path, poll_interval_s=0.05)
    commit(table(cfg), 0, {"metaData": {"id": "x"}})
    with Shipper(cfg) as shipper:
        with pytest.raises(LakehouseError) as caught:
            Shipper(cfg).open()
        assert caught.value.code is ErrorCode.STANDBY_LOCKED
        (site(cfg).meta / PROMOTE_REQUEST).write_text("now\n")
        runner = threading.Thread(target=shipper.run)
        runner.start()
        runner.join(timeout=10)
        assert not runner.is_alive()
        assert shipper.state == "stopped for failover"
    with pytest.raises(LakehouseError) as caught:
        Shipper(cfg).open()
    assert caught.value.code is ErrorCode.STANDBY_PROMOTED
    (site(cfg).meta / PROMOTE_REQUEST).unlink()
    (site(cfg).meta / PROMOTED).write_text('{"promoted_at": "2026-11-26T10:00:00+00:00"}')
    with pytest.raises(LakehouseError) as caught:
        Shipper(cfg).open()
    assert "2026-11-26T10:00:00" in str(caught.value)


def test_the_standby_cannot_overlap_the_warehouse(tmp_path: Path) -> None:
    cfg = Settings(  # type: ignore[call-arg]
        home=REPO,
        data_dir=tmp_path / "p",
        standby=StandbySettings(target=tmp_path / "p" / "warehouse" / "copy"),  # type: ignore[call-arg]
    )
    with pytest.raises(LakehouseError) as caught:
        site(cfg)
    assert caught.value.code is ErrorCode.STANDBY_TARGET_INVALID
    assert site(config(tmp_path)).root == (tmp_path / "s").resolve()


def test_failover_check_finds_a_missing_file(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    t = table(cfg)
    (t / "a.parquet").write_bytes(b"a" * 3)
    commit(t, 0, add("a.parquet", 3))
    with Shipper(cfg) as shipper:
        shipper.cycle()
    dst = site(cfg).warehouse / "silver.db/t"
    assert check_table("silver.t", dst).files == 1
    (dst / "a.parquet").unlink()
    with pytest.raises(LakehouseError) as caught:
        check_table("silver.t", dst)
    assert caught.value.code is ErrorCode.STANDBY_INCOMPLETE


_SAMPLE = re.compile(r'^[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? (-?[0-9.e+]+|NaN)$')


def test_metrics_are_prometheus_text(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    commit(table(cfg), 0, {"metaData": {"id": "x"}})
    with Shipper(cfg) as shipper:
        shipper.cycle()
        text = render_metrics(shipper.status())
    for line in text.splitlines():
        assert line.startswith("# ") or _SAMPLE.match(line), line
    assert 'lakehouse_standby_version{table="silver.t",site="standby"} 0' in text
    assert "lakehouse_standby_healthy 1" in text
    assert (site(cfg).meta / "metrics.prom").read_text().startswith("# HELP")
    hist = LagHistogram()
    for lag in (0.05, 0.1, 0.7, 7.0, 900.0):
        hist.observe(lag)
    doc = hist.to_json()
    assert doc["count"] == 5
    assert dict((b, n) for b, n in doc["buckets"])[0.1] == 2  # le is inclusive
    assert dict((b, n) for b, n in doc["buckets"])[300.0] == 4
    assert render_metrics(None).strip().endswith("lakehouse_standby_healthy 0")
