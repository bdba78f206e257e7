"""Broker credentials: Mosquitto password hashes, the password file, and the ACL file.

Mosquitto 2.0 stores ``user:$7$<iterations>$<base64 salt>$<base64 hash>`` where the hash is
PBKDF2-HMAC-SHA512 of the UTF-8 password over the raw salt bytes (12 random bytes, 101 iterations,
64-byte digest); this is what ``mosquitto_passwd`` writes and the tests check it against the real
tool and broker. Hashing and ACL rendering are pure; only the file writers touch the disk.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from coldchain_protocol.topics import TOPIC_VERSION
from controller.errors import RegistrationError

HASH_ID = "7"
HASH_ITERATIONS = 101
SALT_BYTES = 12
DEFAULT_CONTROLLER_USERNAME = "controller"

_PREFIX_LEVEL = re.compile(r"^[A-Za-z0-9_.-]+$")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Return the Mosquitto 2.0 ``$7$`` hash of a password (random 12-byte salt unless given)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, HASH_ITERATIONS)
    return "${}${}${}${}".format(
        HASH_ID,
        HASH_ITERATIONS,
        base64.b64encode(salt).decode("ascii"),
        base64.b64encode(digest).decode("ascii"),
    )


def verify_password(password: str, encoded: str) -> bool:
    """Whether a ``$7$`` hash (as in a Mosquitto password file) matches the password."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != HASH_ID or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        return False
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode("utf-8"), salt, int(parts[2]), len(expected)
    )
    return hmac.compare_digest(digest, expected)


def check_username(username: str) -> str:
    """Return the user name when a password file can hold it, else raise RegistrationError."""
    if not username or ":" in username or any(ch.isspace() for ch in username):
        raise RegistrationError(
            "username", f"{username!r} cannot be a broker user name (empty, ':' or whitespace)"
        )
    return username


def password_line(username: str, password: str, *, salt: bytes | None = None) -> str:
    """Return one password-file line ``user:$7$...`` (without the newline)."""
    return f"{check_username(username)}:{hash_password(password, salt=salt)}"


def generate_password(*, nbytes: int = 24) -> str:
    """Return a random URL-safe password (it is embedded in the agent's mqtt:// URL)."""
    return secrets.token_urlsafe(nbytes)


def upsert_password_text(existing: str, *, username: str, password: str) -> str:
    """Return the password file text with the user's line replaced or appended (pure)."""
    new_line = password_line(username, password)
    lines = existing.splitlines()
    replaced = False
    out: list[str] = []
    for line in lines:
        if line.partition(":")[0] == username and not line.startswith("#"):
            if not replaced:
                out.append(new_line)
                replaced = True
            continue
        out.append(line)
    if not replaced:
        out.append(new_line)
    return "\n".join(out) + "\n"


def password_users(text: str) -> list[str]:
    """The user names in a password file's text."""
    return [
        line.partition(":")[0]
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def write_file_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write a file atomically (temp file in the same folder, fsync, rename) with `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # The mode is set before any secret is written, so no reader ever sees it with 0644.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        if path.exists() and os.geteuid() == 0:
            # Keep the owner the broker reads it as (e.g. `mosquitto`) when root rewrites it.
            old = path.stat()
            os.chown(tmp_name, old.st_uid, old.st_gid)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # A sidecar lock file: the password file itself is replaced by rename, so it cannot be locked.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def upsert_password(password_file: Path, *, username: str, password: str) -> None:
    """Set a user's password in a Mosquitto password file (atomic, 0600, serialized by a lock).

    A new file is 0600. An existing file keeps its owner (when run as root) and at most 0640 of
    its mode: the broker reads the file after dropping to its own user, so an administrator may
    have made it readable to the broker's group; nobody else ever gets to read it.
    """
    check_username(username)
    with _locked(password_file):
        if password_file.exists():
            existing = password_file.read_text("utf-8")
            mode = stat.S_IMODE(password_file.stat().st_mode) & 0o640 | 0o600
        else:
            existing, mode = "", 0o600
        text = upsert_password_text(existing, username=username, password=password)
        write_file_atomic(password_file, text.encode("utf-8"), mode=mode)


def check_topic_prefix(prefix: str) -> str:
    """Return the prefix when it is a plain topic path (no wildcards, empty levels or spaces)."""
    levels = prefix.split("/")
    if not prefix or not all(_PREFIX_LEVEL.match(level) for level in levels):
        raise RegistrationError(
            "topic_prefix",
            f"{prefix!r} must be '/'-separated levels of letters, digits, '_', '.', '-'",
        )
    return prefix


def render_acl(*, topic_prefix: str, controller_username: str = DEFAULT_CONTROLLER_USERNAME) -> str:
    """Render the Mosquitto ACL file: vehicles own their topics by user name, the controller all."""
    base = f"{check_topic_prefix(topic_prefix)}/{TOPIC_VERSION}"
    check_username(controller_username)
    return (
        "# Mosquitto ACL of the cold-chain platform; rendered by\n"
        "# controller.vehicles.credentials.render_acl(topic_prefix="
        f"{topic_prefix!r}). Do not edit by hand.\n"
        "#\n"
        "# A vehicle connects with its vehicle id as user name (%u); it may only publish its own\n"
        "# telemetry and status and only receive its own acks and resend requests. Pattern lines\n"
        "# apply to every user, the controller too; that is why no vehicle may be registered\n"
        f"# with the id {controller_username!r}.\n"
        "\n"
        f"user {controller_username}\n"
        f"topic read {base}/+/telemetry\n"
        f"topic read {base}/+/status\n"
        f"topic write {base}/+/ack\n"
        f"topic write {base}/+/resend\n"
        "\n"
        f"pattern write {base}/%u/telemetry\n"
        f"pattern write {base}/%u/status\n"
        f"pattern read {base}/%u/ack\n"
        f"pattern read {base}/%u/resend\n"
    )


def write_acl(
    acl_file: Path, *, topic_prefix: str, controller_username: str = DEFAULT_CONTROLLER_USERNAME
) -> None:
    """Write the rendered ACL file atomically (0644: it holds no secret)."""
    text = render_acl(topic_prefix=topic_prefix, controller_username=controller_username)
    write_file_atomic(acl_file, text.encode("utf-8"), mode=0o644)
