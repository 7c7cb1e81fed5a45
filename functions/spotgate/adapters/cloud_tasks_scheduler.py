"""``ports.WakeScheduler`` over Cloud Tasks: a pool's timer becomes a delayed control message.

The planner says when it next needs to look at a pool (``Plan.requeue_after``: a boot that may time out, a
stockout cooldown ending, the idle timeout, a retry after a rate limit). Without a scheduler those wait for
the minute tick. Here each becomes an HTTP task on a Cloud Tasks queue that, at the due time, calls Pub/Sub's
REST ``topics.publish`` on the control topic with an OAuth token of ``service_account`` (which may only
publish there), so the wake-up arrives through the same path as every other control message:
``{"v": 1, "kind": "tick", "pool": …}``, a tick for that pool alone.

Deduplicated per pool: the task name is derived from the pool and the due time rounded *up* to a
``BUCKET`` (so a wake-up is never early), and Cloud Tasks refuses a second task of the same name
(``ALREADY_EXISTS``), so a burst of reconciles wanting the same moment schedules one wake-up.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime, timedelta

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import tasks_v2
from google.protobuf import timestamp_pb2

from spotgate.adapters.api_errors import translate_api_error

BUCKET = timedelta(seconds=10)  # wake-ups of one pool due within the same 10 s share one task
PUBLISH_SCOPE = "https://www.googleapis.com/auth/pubsub"


class CloudTasksScheduler:
    """Schedules wake-ups on ``queue`` (``projects/P/locations/L/queues/Q``) publishing to ``topic``."""

    def __init__(
        self,
        queue: str,
        topic: str,
        service_account: str,
        *,
        pubsub_endpoint: str = "https://pubsub.googleapis.com",
        endpoint: str | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        options = ClientOptions(api_endpoint=endpoint) if endpoint else None
        creds = credentials or (AnonymousCredentials() if endpoint else None)
        self._client = tasks_v2.CloudTasksClient(transport="rest", client_options=options, credentials=creds)
        self._queue = queue
        self._publish_url = f"{pubsub_endpoint.rstrip('/')}/v1/{topic}:publish"
        self._service_account = service_account

    def schedule(self, pool: str, due: datetime) -> None:
        """Publish a tick for ``pool`` at ``due`` (rounded up to the bucket); a duplicate is not an error."""
        at = bucket_end(due)
        message = wake_message(pool, at)
        body = {"messages": [{"data": base64.b64encode(json.dumps(message).encode()).decode()}]}
        task = tasks_v2.Task(
            name=task_name(self._queue, pool, at),
            schedule_time=timestamp_pb2.Timestamp(seconds=int(at.timestamp())),
            http_request=tasks_v2.HttpRequest(
                url=self._publish_url,
                http_method=tasks_v2.HttpMethod.POST,
                headers={"Content-Type": "application/json"},
                body=json.dumps(body).encode(),
                oauth_token=tasks_v2.OAuthToken(service_account_email=self._service_account, scope=PUBLISH_SCOPE),
            ),
        )
        try:
            self._client.create_task(parent=self._queue, task=task)
        except gexc.Conflict:  # 409 ALREADY_EXISTS (the REST client raises it as Conflict): a task of this
            return  # name is pending or ran within the last hour, i.e. this wake-up is scheduled already
        except Exception as e:
            raise translate_api_error(f"schedule a wake-up of pool {pool} at {at.isoformat()}", e) from e

    def __repr__(self) -> str:
        return f"CloudTasksScheduler({self._queue!r})"


def wake_message(pool: str, at: datetime) -> dict[str, object]:
    """The control message a due wake-up publishes: a tick for ``pool`` alone."""
    return {"v": 1, "kind": "tick", "pool": pool, "at": at.isoformat().replace("+00:00", "Z")}


def bucket_end(due: datetime) -> datetime:
    """``due`` rounded up to the next multiple of ``BUCKET`` (UTC epoch)."""
    step = BUCKET.total_seconds()
    return datetime.fromtimestamp(math.ceil(due.timestamp() / step) * step, tz=UTC)


def task_name(queue: str, pool: str, at: datetime) -> str:
    """``QUEUE/tasks/wake-POOL-EPOCH``: one name per pool and bucket (letters, digits, hyphens only)."""
    return f"{queue}/tasks/wake-{pool}-{int(at.timestamp())}"
