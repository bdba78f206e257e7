"""Ed25519 signing of message bodies.

A signed MQTT payload is the compact JSON body, one newline byte, then the base64 (standard
alphabet, padded) Ed25519 signature of the body's exact bytes. Compact JSON never contains a raw
newline, so the last newline always separates body from signature.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from coldchain_protocol.errors import SignatureError


def generate_private_key() -> Ed25519PrivateKey:
    """Create a new vehicle key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """Serialize a private key as unencrypted PKCS#8 PEM (the gateway stores it 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Serialize the public half of a key as SubjectPublicKeyInfo PEM."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Load a PEM private key; raise SignatureError when it is not an Ed25519 key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"cannot load private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("private key is not an Ed25519 key")
    return key


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """Load a PEM public key; raise SignatureError when it is not an Ed25519 key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"cannot load public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("public key is not an Ed25519 key")
    return key


def sign_body(body: bytes, key: Ed25519PrivateKey) -> bytes:
    """Return the signed payload for a compact JSON body."""
    if b"\n" in body:
        raise SignatureError("body must be compact JSON without newlines")
    return body + b"\n" + base64.b64encode(key.sign(body))


def split_signed(payload: bytes) -> tuple[bytes, bytes]:
    """Split a signed payload into (body, signature); raise SignatureError when malformed."""
    body, sep, sig_b64 = payload.rpartition(b"\n")
    if not sep:
        raise SignatureError("payload has no signature line")
    try:
        signature = base64.b64decode(sig_b64, validate=True)
    except binascii.Error as exc:
        raise SignatureError("signature is not valid base64") from exc
    if len(signature) != 64:
        raise SignatureError(f"signature has {len(signature)} bytes, expected 64")
    return body, signature


def verify_signed(payload: bytes, key: Ed25519PublicKey) -> bytes:
    """Verify a signed payload and return its body; raise SignatureError when it does not verify."""
    body, signature = split_signed(payload)
    try:
        key.verify(signature, body)
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify against the vehicle's key") from exc
    return body
