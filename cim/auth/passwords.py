"""Passwords: Argon2id hashes through pwdlib (the library FastAPI's documentation
recommends); never stored or logged in clear."""

from __future__ import annotations

from functools import lru_cache

from pwdlib import PasswordHash

from cim.errors import InputError

MIN_LENGTH = 10
MAX_LENGTH = 256  # bounds the hashing work a request can ask for


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


def check_strength(password: str) -> None:
    """A password the bureau's rules accept: 10 to 256 characters, not all of one kind."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InputError("password", f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    kinds = sum(any(test(c) for c in password) for test in (str.isdigit, str.isalpha, lambda c: not c.isalnum()))
    if kinds < 2:
        raise InputError("password", "must mix at least two of letters, digits and other characters")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, hashed: str) -> bool:
    if not password or len(password) > MAX_LENGTH or not hashed:
        return False
    try:
        return bool(_hasher().verify(password, hashed))
    except Exception:  # a malformed stored hash is a failed sign-in, not a crash
        return False
