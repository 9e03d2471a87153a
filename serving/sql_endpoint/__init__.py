"""The SQL endpoint for analysts and BI tools: a HiveServer2 (Thrift) gateway whose every
statement goes through the guarded, audited read path (docs/adr/0030-sql-endpoint-gateway.md)."""

from serving.sql_endpoint.gateway import SqlGateway, listener_tls, sql_gateway

__all__ = ["SqlGateway", "listener_tls", "sql_gateway"]
