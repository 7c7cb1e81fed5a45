"""Pub/Sub and the services that publish to it or deliver like it.

``service`` is the Pub/Sub emulation (the gRPC ``Publisher`` the real client talks to, REST ``topics.publish``
for the VM agent script); ``push`` delivers each message to the functions as an Eventarc CloudEvent, at
least once with retries and chaos controls; ``logsink`` is the Cloud Logging sink that turns VM system
events into audit ``LogEntry`` messages; ``scheduler`` is the Cloud Scheduler tick job; ``cloudtasks`` is
the Cloud Tasks queue that delivers HTTP tasks when due.
"""

from __future__ import annotations
