"""The edge agent's error hierarchy."""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every edge agent error."""


class OutboxFull(EdgeError):
    """The outbox reached its disk budget; new readings are refused, old ones are kept."""

    def __init__(self, used_bytes: int, budget_bytes: int) -> None:
        super().__init__(
            f"outbox uses {used_bytes} bytes of its {budget_bytes}-byte budget: refusing new readings"
        )
        self.used_bytes = used_bytes
        self.budget_bytes = budget_bytes


class OutboxCorrupt(EdgeError):
    """The outbox file is not a usable outbox; `path` names it."""

    def __init__(self, path: str, cause: str) -> None:
        super().__init__(f"outbox {path} is unusable: {cause}")
        self.path = path
        self.cause = cause
