"""The operations console: panels of pipeline runs, tables, data quality, backups, the hot
standby, the model registry, audit alerts and service health, as a page (``/console``),
JSON endpoints (``/api/console/<panel>``) and Prometheus text (``/metrics``).

docs/operations.md, "Console and metrics", says what each panel shows and where it comes from.
"""

from serving.console.api import mount_console
from serving.console.figures import ConsoleTables
from serving.console.service import PANELS, Console

__all__ = ["PANELS", "Console", "ConsoleTables", "mount_console"]
