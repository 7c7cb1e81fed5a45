"""Every request an end-to-end test sends through the gateway has its access line, and no log holds the key.

``AccessCheck.client_hooks`` goes on the test's HTTP client and records each response's ``x-request-id``
and status; ``verify`` reads the gateway's log after the stack stopped (so every line is written) and
checks that each of those requests has exactly one JSON access line with the same status, and that the API
key appears in no log file of the stack.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx  # the HTTP client the OpenAI SDK of this lock is built on


@dataclass
class AccessCheck:
    sent: dict[str, int] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        """An HTTP client for the OpenAI SDK that records what it received (closed by ``verify``)."""
        client = httpx.Client(event_hooks={"response": [self._record]}, timeout=60)
        self.clients.append(client)
        return client

    def _record(self, response: httpx.Response) -> None:
        rid = response.headers.get("x-request-id")
        if rid:
            self.sent[rid] = response.status_code

    def verify(self, logs: Path, secret: str) -> None:
        for client in self.clients:
            client.close()
        assert self.sent, "no request through the gateway was recorded"
        lines = [json.loads(line) for line in (logs / "gateway.log").read_text().splitlines() if line.startswith("{")]
        access = [entry for entry in lines if entry.get("access")]
        counts = Counter(entry["request_id"] for entry in access)
        status = {entry["request_id"]: entry["status"] for entry in access}
        missing = [rid for rid in self.sent if counts[rid] != 1]
        assert not missing, f"{len(missing)} of {len(self.sent)} requests lack exactly one access line: {missing[:5]}"
        wrong = {rid: (code, status[rid]) for rid, code in self.sent.items() if status[rid] != code}
        assert not wrong, f"access-line status differs from the response's: {wrong}"
        leaked = [path.name for path in logs.glob("*.log") if secret in path.read_text(errors="replace")]
        assert not leaked, f"the API key appears in {leaked}"
