"""Credentials, sessions and CSRF tokens of the admin UI; pure but for the clock and randomness.

Passwords are hashed with the standard library's scrypt and written in the PHC string format:
``$scrypt$ln=15,r=8,p=1$<salt>$<hash>`` (base64 without padding; ``ln`` is log2 of N). A
session is a cookie ``<expiry>.<nonce>.<mac>``: the HMAC-SHA256 of expiry and nonce under a
secret the daemon makes at start (so a restart logs everyone out, and nothing is stored). The
CSRF token of a session is another HMAC of its nonce: a page from this server knows it, a page
of another site cannot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Final

from minion_daemon.config import ConfigError

#: When set, its value is accepted as a password too (for automation that holds a token).
TOKEN_ENVIRONMENT_VARIABLE: Final = "MINION_DAEMON_ADMIN_TOKEN"  # noqa: S105 - a name
#: How long a login lasts.
SESSION_SECONDS: Final = 12 * 3600
COOKIE_NAME: Final = "minion_admin_session"

_LOG2_N: Final = 15
_R: Final = 8
_P: Final = 1
_PHC: Final = re.compile(
    r"\$scrypt\$ln=(?P<ln>[0-9]{1,2}),r=(?P<r>[0-9]{1,2}),p=(?P<p>[0-9]{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]{16,})\$(?P<hash>[A-Za-z0-9+/]{43})"
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    memory = 2 * 128 * r * (2**log2_n) * p
    return hashlib.scrypt(
        password.encode(), salt=salt, n=2**log2_n, r=r, p=p, maxmem=memory, dklen=32
    )


def hash_password(password: str) -> str:
    """A PHC-format scrypt hash of ``password`` with a fresh salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _LOG2_N, _R, _P)
    return f"$scrypt$ln={_LOG2_N},r={_R},p={_P}${_b64(salt)}${_b64(digest)}"


def check_hash(encoded: str) -> None:
    """Raise :class:`ConfigError` unless ``encoded`` is a hash :func:`hash_password` wrote."""
    match = _PHC.fullmatch(encoded)
    if match is None or not 10 <= int(match["ln"]) <= 20:
        raise ConfigError(
            "config",
            "admin.password_hash",
            "not a $scrypt$ln=..,r=..,p=..$salt$hash string;"
            " make one with `minion-daemon admin --hash-password`",
        )


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the hash (compared in constant time)."""
    match = _PHC.fullmatch(encoded)
    if match is None:
        return False
    try:
        salt, expected = _unb64(match["salt"]), _unb64(match["hash"])
    except binascii.Error:
        return False
    digest = _scrypt(password, salt, int(match["ln"]), int(match["r"]), int(match["p"]))
    return hmac.compare_digest(digest, expected)


@dataclass(frozen=True)
class Credentials:
    """What a login may present: the password of ``password_hash`` or the token."""

    password_hash: str | None
    token: str | None

    @classmethod
    def from_config(cls, password_hash: str | None) -> Credentials:
        if password_hash is not None:
            check_hash(password_hash)
        return cls(password_hash, os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None)

    @property
    def configured(self) -> bool:
        return self.password_hash is not None or self.token is not None

    def accept(self, password: str) -> bool:
        if self.token is not None and hmac.compare_digest(password.encode(), self.token.encode()):
            return True
        return self.password_hash is not None and verify_password(password, self.password_hash)


class Sessions:
    """Signed session cookies and their CSRF tokens, under one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, text: str) -> str:
        message = f"{purpose}:{text}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def issue(self, now: float) -> str:
        """A new session cookie value, valid for :data:`SESSION_SECONDS`."""
        body = f"{int(now) + SESSION_SECONDS}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._mac('session', body)}"

    def valid(self, cookie: str | None, now: float) -> bool:
        if not cookie or cookie.count(".") != 2:
            return False
        expiry, nonce, mac = cookie.split(".")
        body = f"{expiry}.{nonce}"
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return False
        return expiry.isdigit() and int(expiry) > now

    def csrf_token(self, cookie: str) -> str:
        """The token forms of this session carry."""
        return self._mac("csrf", cookie)

    def csrf_valid(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        return hmac.compare_digest(token, self.csrf_token(cookie))
