"""Which tables get de-identified views, and the views' specs for the SQL guard."""

from __future__ import annotations

from collections.abc import Iterable

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.deid.policy import DeidPolicy
from lakehouse.governance.deid.views import ViewPlan, deid_spec, plan_view
from lakehouse.tables.spec import TableSpec


def source_specs(specs: Iterable[TableSpec], policy: DeidPolicy) -> list[TableSpec]:
    """The specs of the policy's layers (silver, gold): each gets a view."""
    return [s for s in specs if s.layer in policy.layers]


def plans(specs: Iterable[TableSpec], policy: DeidPolicy) -> list[ViewPlan]:
    """The view plan of every source spec (free text may come from a ``<table>_deid``)."""
    specs = list(specs)
    by_name = {s.name: s for s in specs}
    return [plan_view(s, policy, by_name) for s in source_specs(specs, policy)]


def find_plan(name: str, specs: Iterable[TableSpec], policy: DeidPolicy) -> ViewPlan:
    """The plan for a source table or its view name (``LH-DID-002`` when neither)."""
    for plan in plans(specs, policy):
        if name in (plan.source.name, plan.view):
            return plan
    raise error(ErrorCode.DEID_UNKNOWN_TABLE, name=name, names=", ".join(policy.layers))


def materialized_spec(plan: ViewPlan, policy: DeidPolicy) -> TableSpec:
    """The Delta table a view materializes into, merged on the source's (surviving) keys."""
    target = policy.materialized_name(plan.source.name)
    kept = {c.name for c in plan.columns}
    missing = [k for k in plan.source.keys if k not in kept]
    if not plan.source.keys or missing:
        reason = "the source has no keys" if not plan.source.keys else "a key column is dropped"
        raise error(ErrorCode.DEID_NOT_MATERIALIZABLE, table=plan.source.name, reason=reason)
    return deid_spec(plan, name=target, keys=plan.source.keys)


def deid_catalog(specs: Iterable[TableSpec], policy: DeidPolicy) -> dict[str, TableSpec]:
    """Specs of every view (and of each materializable view's table) by name, for the guard."""
    out: dict[str, TableSpec] = {}
    for plan in plans(specs, policy):
        if not plan.columns:
            continue
        out[plan.view] = deid_spec(plan)
        try:
            target = materialized_spec(plan, policy)
        except LakehouseError:  # not materializable: there is no table to read
            continue
        out[target.name] = target
    return out
