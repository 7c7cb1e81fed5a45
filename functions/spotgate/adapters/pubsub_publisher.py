"""``ports.Publisher`` over google-cloud-pubsub: spotgate control messages as JSON.

With ``PUBSUB_EMULATOR_HOST`` set (the sandbox), the client library itself switches to an insecure
channel to that host; nothing here differs between the sandbox and GCP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from google.cloud.pubsub_v1 import PublisherClient

from spotgate.adapters.api_errors import translated


class PubSubPublisher:
    """Publishes to topics of one project by short topic name."""

    def __init__(
        self,
        project: str,
        *,
        client: PublisherClient | None = None,
        timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self._project = project
        self._client = client or PublisherClient()
        self._timeout = timeout.total_seconds()

    def publish(self, topic: str, message: Mapping[str, Any]) -> str:
        data = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
        path = f"projects/{self._project}/topics/{topic}"
        with translated(f"publish to {topic}"):
            message_id: str = self._client.publish(path, data).result(timeout=self._timeout)
        return message_id
