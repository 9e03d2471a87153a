"""Access policies as data: roles, table and column grants, row scopes, break-glass.

A policy is a YAML file (default ``lakehouse/governance/policies/default.yaml``, setting
``security.policy_file``) loaded into typed objects. Separation of duties is checked when a
policy loads: no role may both administer and audit, the admin role may not read the audit
schema, and the auditor role may write nothing.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.sessions import ROLES, Principal
from lakehouse.tables.spec import Phi, TableSpec

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.yaml"
Scope = Literal["department", "institution"]


class RoleGrant(BaseModel):
    """What one role may do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read: tuple[str, ...] = Field(default=(), description="Table name patterns the role may read.")
    deny: tuple[str, ...] = Field(
        default=(), description="Patterns never readable (wins over read)."
    )
    write: tuple[str, ...] = Field(default=(), description="Table patterns the role may change.")
    phi: tuple[Phi, ...] = Field(default=(), description="PHI tags whose columns the role may see.")
    scope: tuple[Scope, ...] = Field(default=(), description="Row scopes applied to its reads.")
    break_glass: bool = Field(
        default=False, description="May lift the department scope with a reason."
    )


class ScopeColumns(BaseModel):
    """Column names by which rows are scoped (a table is scoped by those it has)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patient: str = "patient_id"
    department: str = "department_code"
    institution: str = "institution_code"


class Policy(BaseModel):
    """A whole policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    columns: ScopeColumns = Field(default_factory=ScopeColumns)
    patient_directory: str | None = Field(
        default=None, description="Table mapping each patient to department and institution."
    )
    roles: dict[str, RoleGrant]

    def grant(self, principal: Principal) -> RoleGrant:
        return self.roles.get(principal.role, RoleGrant())

    def may_read(self, role: str, table: str) -> bool:
        g = self.roles.get(role, RoleGrant())
        return _matches(table, g.read) and not _matches(table, g.deny)

    def may_write(self, role: str, table: str) -> bool:
        return _matches(table, self.roles.get(role, RoleGrant()).write)

    def require_write(self, principal: Principal, table: str) -> None:
        """Refuse a change to ``table`` the role may not make (``LH-SEC-006``)."""
        if not self.may_write(principal.role, table):
            raise error(
                ErrorCode.ACCESS_DENIED,
                role=principal.role,
                operation="change",
                table=table,
                reason="no write grant",
            )

    def visible_columns(self, role: str, spec: TableSpec) -> list[str]:
        """The spec's columns the role may see: untagged ones and granted PHI tags."""
        allowed = set(self.roles.get(role, RoleGrant()).phi)
        phi = spec.phi_columns
        return [c for c in spec.column_names if c not in phi or phi[c] in allowed]


def _matches(table: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(table, p) for p in patterns)


def _check_duties(policy: Policy) -> str | None:
    for role in policy.roles:
        if role not in ROLES:
            return f"unknown role {role}"
    if policy.may_read("admin", "audit.events"):
        return "admin may not read the audit log"
    if policy.roles.get("auditor", RoleGrant()).write:
        return "auditor may not change data"
    for role, g in policy.roles.items():
        if role != "auditor" and _matches("audit.events", g.write):
            return f"{role} may not write the audit log"
    return None


def load_policy(path: Path | None = None) -> Policy:
    """Load and check a policy file (``LH-SEC-011`` when it is invalid)."""
    path = path or DEFAULT_POLICY
    try:
        policy = Policy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise error(ErrorCode.POLICY_INVALID, path=str(path), reason=type(exc).__name__) from exc
    except (yaml.YAMLError, ValidationError) as exc:
        reason = "not valid YAML" if isinstance(exc, yaml.YAMLError) else "schema violation"
        raise error(ErrorCode.POLICY_INVALID, path=str(path), reason=reason) from exc
    problem = _check_duties(policy)
    if problem:
        raise error(ErrorCode.POLICY_INVALID, path=str(path), reason=problem)
    return policy
