"""Cloud Run: the admin v2 REST subset the overflow adapter uses, and who may invoke a service.

``api`` answers ``services.get``/``services.patch`` (service-level min instances, long-running operations)
over the sandbox's overflow engines; ``iam`` is ``roles/run.invoker`` in miniature, the ID-token check an
overflow engine applies to its callers.
"""

from __future__ import annotations
