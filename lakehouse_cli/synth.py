"""``lakehouse synth``: build a synthetic multi-site hospital into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lakehouse.errors import LakehouseError


def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (new or empty).")],
    patients: Annotated[
        int | None, typer.Option("--patients", help="Number of patients (default: settings).")
    ] = None,
    sites: Annotated[
        int | None,
        typer.Option("--sites", help="Institutions incl. the main hospital, 1-9 (default: 3)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: 42).")] = None,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Patients generated at a time.")
    ] = None,
    clean: Annotated[bool, typer.Option("--clean", help="Inject no dirt at all.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier synthetic hospital in OUT.")
    ] = False,
    his_url: Annotated[
        str | None,
        typer.Option("--his-url", help="SQLAlchemy URL of the HIS database (default: SQLite)."),
    ] = None,
    note_wording: Annotated[
        str,
        typer.Option(
            "--note-wording",
            help="standard (default) or varied-train / varied-validation / varied-held-out.",
        ),
    ] = "standard",
) -> None:
    """Generate a synthetic multi-site hospital: source systems, dirt and ground truth."""
    from lakehouse.logging import configure_logging
    from lakehouse.settings import load_settings
    from lakehouse.synthetic import DirtRates, HospitalConfig, generate

    try:
        cfg = load_settings()
        configure_logging(cfg.log_level)
        s = cfg.synth
        config = HospitalConfig(
            patients=patients if patients is not None else s.patients,
            sites=sites if sites is not None else s.sites,
            seed=seed if seed is not None else s.seed,
            chunk_size=chunk_size if chunk_size is not None else s.chunk_size,
            dirt=DirtRates.clean() if clean or s.clean else DirtRates(),
            his_url=his_url,
            note_wording=note_wording,  # type: ignore[arg-type]  # validate() checks it
        )
        report = generate(out, config, overwrite=overwrite)
    except LakehouseError as exc:
        typer.echo(f"error {exc}", err=True)
        if exc.code.value.remedy:
            typer.echo(f"  what to do: {exc.code.value.remedy}", err=True)
        raise typer.Exit(exc.code.exit_status) from None
    sources = report.manifest["counts"]["sources"]
    typer.echo(f"synthetic hospital written to {out}")
    for name, c in sources.items():
        typer.echo(f"  {name:<6} {c['files']:>7} files {c['records']:>9} records")
    typer.echo(f"  his    {sum(report.manifest['counts']['his'].values()):>9} rows")
    typer.echo(f"  truth  {out / 'truth'}  manifest {out / 'manifest.json'}")
