"""Hot standby of the Delta tables and failover (docs/operations.md, docs/adr/0022).

with Shipper(cfg) as shipper:        # `lakehouse standby`: pure file operations, no Spark
    shipper.run(stop=event)
failover(spark, cfg)                 # `lakehouse failover` (lakehouse.standby.failover):
                                     # register the standby's tables in spark's catalog

This package imports no Spark: the shipper runs as its own small process.
"""

from lakehouse.standby.metrics import render as render_metrics
from lakehouse.standby.ship import CycleReport, Shipper, read_status
from lakehouse.standby.site import Site, site, target_root

__all__ = [
    "CycleReport",
    "Shipper",
    "Site",
    "read_status",
    "render_metrics",
    "site",
    "target_root",
]
