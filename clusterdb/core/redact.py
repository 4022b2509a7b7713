"""Keep secrets out of every message, repr, log line and stats value.

:class:`Redactor` knows the secret values of a cluster (passwords from the config) and also
masks password-looking fields it was never told about: ``password=...`` / ``pwd=...`` /
``passwd=...`` pairs, ``password: ...``, ``'password': '...'`` and URL userinfo
(``://user:SECRET@``).

Guarantee (checked by property tests): no known secret occurs in the output of
:meth:`Redactor.scrub` or :meth:`Redactor.one_line`. Three details make it hold:

* the mask is built from a character that occurs in no secret, so a mask can neither be nor
  complete a secret;
* secrets are matched longest first in one left-to-right pass, so the text left between two
  masks never holds a whole secret;
* :meth:`Redactor.one_line` scrubs again after collapsing whitespace and truncating, because
  both can create an occurrence that was not in the original text.

Very short secrets are masked too, even a one-character one: that makes messages of a
cluster with such a password hard to read (every ``a`` becomes ``***``), but a weak password
is still a password, and leaking it is worse than an ugly message.

Secrets are also masked in the forms they take inside URLs (percent-encoded), in Python
``repr`` (backslash-escaped) and in libpq conninfo strings (quoted with backslashes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MAX_LINE", "SECRET_KEY_WORDS", "Redactor", "is_secret_key"]

MAX_LINE = 300
"""Longest line :meth:`Redactor.one_line` returns (plus one ellipsis character)."""

SECRET_KEY_WORDS = ("password", "passwd", "pwd", "passphrase", "secret", "token")
"""A key holds a secret when its lower-cased name contains one of these words."""

_MASK_CHARS = "*#~%^"

_KEY = r"[\w.-]*(?:password|passwd|pwd|passphrase)"
_VALUE = (
    r"'(?:[^'\\]|\\.)*(?:'|$)"  # single-quoted, backslash escapes; unterminated runs to the end
    r'|"(?:[^"\\]|\\.)*(?:"|$)'
    r"|[^\s'\",;&)}\]]+"
)
_PAIR = re.compile(
    rf"(?i)(?<![\w.-])(?P<key>{_KEY})(?P<q>['\"]?)(?P<sep>\s*[:=]\s*)(?P<value>{_VALUE})"
)
_URL_USERINFO = re.compile(r"(?P<pre>[A-Za-z][\w+.-]*://[^\s:/@]*:)(?P<pw>[^\s/]*)@")
_SPACE = re.compile(r"\s+")


def is_secret_key(key: str) -> bool:
    """True when a parameter named ``key`` holds a secret (password, sslpassword, token...)."""
    lowered = key.lower()
    return any(word in lowered for word in SECRET_KEY_WORDS)


def _mask_pair(match: re.Match[str], mask: str) -> str:
    if match["sep"].strip() == ":" and match["value"] in ("YES", "NO"):
        return match[0]  # MySQL's "(using password: YES)" says whether one was sent, not which
    return f"{match['key']}{match['q']}{match['sep']}{mask}"


def _variants(secret: str) -> set[str]:
    """The forms a secret takes when a driver or a URL quotes it."""
    conninfo = secret.replace("\\", "\\\\").replace("'", "\\'")
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        repr(secret)[1:-1],
        conninfo,
    } - {""}


def _pick_mask(secrets: Iterable[str]) -> str:
    used = set("".join(secrets))
    for char in _MASK_CHARS:
        if char not in used:
            return char * 3
    code = 0x2591  # block elements, then onwards: some character is always free
    while chr(code) in used:
        code += 1
    return chr(code) * 3


class Redactor:
    """Masks known secret values and password-looking fields in text (immutable)."""

    __slots__ = ("_mask", "_pattern", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        plain = {s for s in secrets if isinstance(s, str) and s}
        every: set[str] = set()
        for secret in plain:
            every |= _variants(secret)
        ordered = sorted(every, key=lambda s: (-len(s), s))
        self._secrets: frozenset[str] = frozenset(plain)
        self._mask = _pick_mask(every)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "_pattern"):
            raise AttributeError("Redactor is immutable")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secrets>)"

    @property
    def mask(self) -> str:
        """What a secret is replaced with (``***`` unless a secret contains ``*``)."""
        return self._mask

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A new Redactor knowing this one's secrets and ``secrets``."""
        return Redactor([*self._secrets, *secrets])

    def scrub(self, text: str) -> str:
        """``text`` with every known secret and password-looking value replaced by the mask."""
        mask = self._mask
        # Field patterns first: a secret equal to a key name ("password") must not hide the
        # key from them.
        text = _PAIR.sub(lambda m: _mask_pair(m, mask), text)
        text = _URL_USERINFO.sub(lambda m: f"{m['pre']}{mask}@", text)
        if self._pattern is not None:
            text = self._pattern.sub(mask, text)
        return text

    def one_line(self, exc: BaseException) -> str:
        """``"TypeName: first non-empty line of the message"``, scrubbed, at most ~300 chars."""
        name = type(exc).__name__
        try:
            message = str(exc)
        except Exception:  # a broken __str__ must not hide the original error
            message = "<message unavailable>"
        message = self.scrub(message)
        first = next((line for line in message.splitlines() if line.strip()), "")
        line = _SPACE.sub(" ", f"{name}: {first}" if first else name).strip()
        line = self.scrub(line)
        if len(line) > MAX_LINE:
            line = self.scrub(line[:MAX_LINE] + "…")
        return line
