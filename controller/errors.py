"""The controller's error hierarchy; every error carries the data a caller needs."""

from __future__ import annotations


class ControllerError(Exception):
    """Base of every controller error."""


class DatabaseUnavailable(ControllerError):
    """The database does not answer at `url` (password elided)."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"database at {url} is unavailable: {cause}")
        self.url = url
        self.cause = cause


class MigrationError(ControllerError):
    """A migration file failed to apply."""

    def __init__(self, version: str, cause: str) -> None:
        super().__init__(f"migration {version} failed: {cause}")
        self.version = version
        self.cause = cause


class RegistrationError(ControllerError):
    """A vehicle cannot be registered as specified; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(ControllerError):
    """A requested record does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key
