"""Imperative shells: gather observed state, call the pure core, apply its actions, commit."""

from __future__ import annotations
