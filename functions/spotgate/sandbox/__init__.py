"""The local cloud: emulations of the GCP APIs spotgate uses, and simulated SPOT GPU VMs.

Never deployed and never imported by production code (checked by import-linter); the real Google
client libraries talk to it over loopback exactly as they would talk to Google.
"""

from __future__ import annotations
