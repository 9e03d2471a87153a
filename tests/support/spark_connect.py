"""PySpark's Spark Connect client verifying the gateway against a given CA file (tests run
several gateways with different self-signed certificates in one process; gRPC reads
``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``, what a notebook server sets, only once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from pyspark.sql.connect.client import DefaultChannelBuilder
from pyspark.sql.connect.session import SparkSession as RemoteSession


class TrustingChannelBuilder(DefaultChannelBuilder):
    """A ``sc://`` connection over TLS that trusts ``ca`` (and sends the URL's token)."""

    def __init__(self, url: str, ca: Path) -> None:
        super().__init__(url)
        self._ca = ca.read_bytes()

    def toChannel(self) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(root_certificates=self._ca)
        if self.token is not None:
            creds = grpc.composite_channel_credentials(
                creds, grpc.access_token_call_credentials(self.token)
            )
        return self._secure_channel(self.endpoint, creds)


def remote_session(url: str, ca: Path) -> Any:
    """A new Spark Connect session at ``url`` (``sc://HOST:PORT/;token=...``) over TLS."""
    return RemoteSession.builder.channelBuilder(TrustingChannelBuilder(url, ca)).create()
