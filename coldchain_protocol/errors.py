"""Errors raised while encoding or decoding wire messages."""


class ProtocolError(ValueError):
    """A message does not follow the wire contract; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(ProtocolError):
    """A message's Ed25519 signature is missing, malformed or does not verify."""
