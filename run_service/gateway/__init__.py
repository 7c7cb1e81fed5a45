"""spotgate's gateway: one authenticated, OpenAI-compatible URL in front of a fleet of SPOT GPU VMs.

Requests are authenticated (API key or Google ID token), routed by ``model`` to a pool, and streamed to the
least busy ready VM of that pool, or to the pool's Cloud Run overflow service, or held briefly while a VM
wakes. The routing table and keys are followed live from the store and served from memory. ``app`` builds
the Flask app from its dependencies; ``wsgi`` builds those dependencies from settings for gunicorn.
"""
