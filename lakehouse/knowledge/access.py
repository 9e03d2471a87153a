"""Who may read a knowledge-base folder: ``_access.yaml`` files, inherited, default deny.

A user folder is readable by a user only if the folder or one of its ancestors (within the
user tree) has an ``_access.yaml`` and the user satisfies **every** ``_access.yaml`` on the
way from the top folder down to it: a subfolder inherits its parent's rule and its own
file can only narrow it. A file lists ``roles`` and/or ``departments``; a user satisfies
it when their role is listed (or ``roles`` is absent or holds ``"*"``) **and** their
department is listed (or ``departments`` is absent). A folder without any file on its
path is closed to everyone; a file that does not parse closes its folder (and reports
``LH-KNB-008``). The built-in project section is readable by every signed-in role.

```yaml
# sops/icu/_access.yaml
roles: [clinician, nurse]
departments: [ICU, A]
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.sessions import ROLES, Principal

ACCESS_FILE = "_access.yaml"
PROJECT = "project"


@dataclass(frozen=True)
class Operator:
    """The host operator at the command line (``lakehouse kb``): reads every folder."""

    name: str = "operator"


OPERATOR = Operator()
Reader = Principal | Operator


class FolderRule(BaseModel):
    """One ``_access.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: tuple[str, ...] | None = Field(
        default=None, description='Roles allowed ("*": any); absent: any role.'
    )
    departments: tuple[str, ...] | None = Field(
        default=None, description="Departments allowed; absent: any department."
    )

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = sorted(set(roles or ()) - {*ROLES, "*"})
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}")
        return roles

    def admits(self, who: Principal) -> bool:
        role_ok = self.roles is None or "*" in self.roles or who.role in self.roles
        dept_ok = self.departments is None or (
            who.department is not None and who.department in self.departments
        )
        return role_ok and dept_ok


#: A folder whose access file is broken: nobody.
CLOSED = FolderRule(roles=(), departments=())


def load_rule(path: Path) -> FolderRule:
    """Parse one access file; ``LH-KNB-008`` when it is not valid."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError("expected a mapping")
        return FolderRule.model_validate(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError, ValueError) as exc:
        reason = "not a mapping of roles/departments lists"
        if isinstance(exc, ValidationError):
            reason = (
                "; ".join(sorted({str(e["loc"][0]) if e["loc"] else "file" for e in exc.errors()}))
                + " invalid"
            )
        raise error(ErrorCode.KB_ACCESS_FILE_INVALID, file=str(path.name), reason=reason) from None


@dataclass(frozen=True)
class FolderAccess:
    """The access rules of the user tree: folder (``a/b``, ``""`` for the top) → rule."""

    rules: Mapping[str, FolderRule]

    @classmethod
    def load(cls, root: Path) -> tuple[FolderAccess, list[tuple[str, LakehouseError]]]:
        """Every ``_access.yaml`` under ``root``; broken ones close their folder and are
        returned as (folder, error)."""
        rules: dict[str, FolderRule] = {}
        problems: list[tuple[str, LakehouseError]] = []
        if root.is_dir():
            for file in sorted(root.rglob(ACCESS_FILE)):
                folder = file.parent.relative_to(root).as_posix()
                folder = "" if folder == "." else folder
                try:
                    rules[folder] = load_rule(file)
                except LakehouseError as exc:
                    rules[folder] = CLOSED
                    problems.append((folder, exc))
        return cls(rules), problems

    def can_read(self, who: Reader, folder: str) -> bool:
        """May ``who`` read the tree folder ``folder`` (``project/...`` or a user folder)?"""
        if isinstance(who, Operator):
            return True
        parts = PurePosixPath(folder).parts if folder else ()
        if parts and parts[0] == PROJECT:
            return True
        chain = [self.rules.get("/".join(parts[:i])) for i in range(len(parts) + 1)]
        found = [r for r in chain if r is not None]
        return bool(found) and all(r.admits(who) for r in found)

    def governed(self, folder: str) -> bool:
        """Whether an access file applies to a user folder (else it is closed to all)."""
        parts = PurePosixPath(folder).parts if folder else ()
        return any("/".join(parts[:i]) in self.rules for i in range(len(parts) + 1))

    def readable(self, who: Reader, folders: Iterable[str]) -> set[str]:
        """The folders of ``folders`` that ``who`` may read."""
        return {f for f in folders if self.can_read(who, f)}
