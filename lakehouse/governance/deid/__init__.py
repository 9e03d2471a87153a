"""De-identified views for analysts and model training (docs/security.md).

- :mod:`.policy`: what each PHI tag becomes (``policies/deid.yaml``), as data.
- :mod:`.person_keys`: per-person token, date shift and identifier key in the restricted
  ``governance.person_keys``, derived with the deid key outside SQL, insert-only.
- :mod:`.views`: one ``deid.<layer>_<table>`` view per TableSpec, joining the person keys.
- :mod:`.kanon`: k-anonymity of a view over its quasi-identifiers.
- :mod:`.catalog`: which specs get views; the views' specs for the SQL guard.

The job ``jobs/deid.py`` (``lakehouse deid refresh|check|materialize``) runs them.
"""

from lakehouse.governance.deid.catalog import deid_catalog, find_plan, materialized_spec, plans
from lakehouse.governance.deid.kanon import KReport, k_anonymity
from lakehouse.governance.deid.person_keys import derive, identifier_token, refresh_person_keys
from lakehouse.governance.deid.policy import DeidPolicy, load_deid_policy
from lakehouse.governance.deid.views import ViewPlan, deid_spec, plan_view, view_sql

__all__ = [
    "DeidPolicy",
    "KReport",
    "ViewPlan",
    "deid_catalog",
    "deid_spec",
    "derive",
    "find_plan",
    "identifier_token",
    "k_anonymity",
    "load_deid_policy",
    "materialized_spec",
    "plan_view",
    "plans",
    "refresh_person_keys",
    "view_sql",
]
