"""Spark Connect for notebooks: the guarding gRPC gateway (docs/adr/0033)."""

from serving.spark_connect.gateway import ConnectGateway, connect_gateway, listener_tls

__all__ = ["ConnectGateway", "connect_gateway", "listener_tls"]
