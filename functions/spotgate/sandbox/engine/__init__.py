"""The fake OpenAI-compatible inference engine that a simulated VM or overflow service runs.

``server`` is the engine process (``python -m spotgate.sandbox.engine.server``), ``completion`` the
deterministic answers in OpenAI's exact response shapes (continuation included), ``options`` its command
line shared with the launcher, and ``process`` starts engine children and makes sure they die with the sandbox.
"""

from __future__ import annotations
