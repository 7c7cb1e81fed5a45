"""Each sandbox claims its own loopback block, and says why when it cannot."""

from __future__ import annotations

import random
import re
import socket

import pytest

from spotgate.errors import UnavailableError
from spotgate.sandbox.devstack.addresses import claim_block


def test_two_claims_get_different_blocks_even_from_the_same_random_sequence() -> None:
    first = claim_block([8000], random.Random(7))
    try:
        second = claim_block([8000], random.Random(7))
        try:
            assert first.prefix != second.prefix
            assert first.address(10) == f"{first.prefix}.10"
        finally:
            second.release()
    finally:
        first.release()


def test_a_port_taken_on_every_address_is_named() -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("0.0.0.0", 0))  # listens on every loopback address too
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(UnavailableError, match=re.escape(f"ports [{port}] are taken")):
            claim_block([port], random.Random(1))
    finally:
        blocker.close()
