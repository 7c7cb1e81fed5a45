"""Implementations of the ports in ``spotgate.ports`` over real I/O.

Each adapter converts raw external data into domain values at its boundary and translates vendor errors
into ``spotgate.errors`` (``raise ... from e``).
"""

from __future__ import annotations
