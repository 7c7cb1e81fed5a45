"""The local cloud: emulations of the GCP APIs spotgate uses, and simulated SPOT GPU VMs.

Never deployed and never imported by production code (checked by import-linter); the real Google
client libraries talk to it over loopback exactly as they would talk to Google. One subpackage per thing
emulated: ``compute`` (Compute Engine: instances, zone operations, advice, preflight reads, the VMs and
their agents), ``cloudrun`` (Cloud Run admin API and invoker IAM), ``pubsub`` (Pub/Sub, Eventarc push,
the Cloud Logging sink, Cloud Scheduler, Cloud Tasks), ``metadata`` (the GCE metadata server and the
token issuer), ``engine`` (the fake OpenAI-compatible inference engine), ``chaos`` (chaos runs and their
verdict) and ``devstack`` (the sandbox as one object, the whole local system, and their commands).
"""

from __future__ import annotations
