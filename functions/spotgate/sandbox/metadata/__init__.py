"""The GCE metadata server and the Google identity behind it.

``server`` answers what google-auth and the VM agent ask the metadata server (the default service account,
its access and ID tokens, the project id, ``instance/preempted``), so Application Default Credentials work unchanged;
``identity`` is the local token issuer that signs those ID tokens and serves the certificates that verify them.
"""

from __future__ import annotations
