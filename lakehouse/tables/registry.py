"""Every TableSpec of the project, found by walking ``lakehouse.tables.<layer>.<module>``.

A new table is a module-level :class:`TableSpec` in a module under ``lakehouse/tables/``;
nothing else needs to list it.
"""

from __future__ import annotations

import importlib
import pkgutil

import lakehouse.tables as tables_pkg
from lakehouse.tables.spec import TableSpec


def all_specs() -> list[TableSpec]:
    """All specs, sorted by table name; a name defined twice is an error."""
    found: dict[str, TableSpec] = {}
    for info in pkgutil.walk_packages(tables_pkg.__path__, prefix="lakehouse.tables."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, TableSpec):
                other = found.setdefault(value.name, value)
                if other is not value:
                    raise ValueError(f"table {value.name} is specified twice")
    return [found[name] for name in sorted(found)]
