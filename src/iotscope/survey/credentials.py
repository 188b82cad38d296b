"""Default credentials the survey tries, and the user-extensible file format they live in.

Findings record a credential's *id*, never its plaintext: the id is enough for an ISP or a vendor
to know which default is open (it can be looked up in this list), and nothing secret leaves the
scanner's own store. The built-in list (``data/credentials.toml``) cites the source of every pair.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from iotscope.errors import IotscopeError
from iotscope.survey.textfile import read_text_file

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Printable ASCII only: a CR/LF inside a username would let a credential file inject commands
#: into a telnet session, and non-ASCII has no agreed wire encoding on these devices.
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_MAX_FIELD = 128


class CredentialsError(IotscopeError, ValueError):
    """A credential file is missing or malformed; the message is one line naming the file and entry."""


@dataclass(frozen=True, slots=True)
class Credential:
    id: str
    username: str
    password: str
    source: str

    def __repr__(self) -> str:
        # Keep plaintext out of logs and tracebacks.
        return f"Credential(id={self.id!r})"


def load_builtin() -> list[Credential]:
    """The built-in list: Mirai's 62 pairs (``mirai-01`` .. ``mirai-62``) then vendor defaults."""
    resource = resources.files("iotscope.survey").joinpath("data/credentials.toml")
    return _parse(resource.read_text(encoding="utf-8"), "built-in credentials.toml")


def load_credentials(path: str | Path) -> list[Credential]:
    """A user credential file in the built-in format; ``source`` may be omitted (defaults to the file)."""
    path = Path(path)
    return _parse(read_text_file(path, "credential file", CredentialsError), str(path))


def merge(*lists: list[Credential]) -> list[Credential]:
    """Concatenate credential lists in order; an id used twice is an error (ids must name one pair)."""
    merged: list[Credential] = []
    seen: set[str] = set()
    for credentials in lists:
        for credential in credentials:
            if credential.id in seen:
                raise CredentialsError(f"credential id {credential.id!r} is defined twice")
            seen.add(credential.id)
            merged.append(credential)
    return merged


def attempt_order(credentials: list[Credential]) -> list[Credential]:
    """Each distinct (username, password) pair once, first id wins: repeats would only waste the
    per-device attempt budget (Mirai itself lists guest/12345 twice)."""
    seen: set[tuple[str, str]] = set()
    ordered = []
    for credential in credentials:
        pair = (credential.username, credential.password)
        if pair not in seen:
            seen.add(pair)
            ordered.append(credential)
    return ordered


def _parse(text: str, origin: str) -> list[Credential]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CredentialsError(f"{origin}: not valid TOML ({exc})") from None
    entries = document.get("credential")
    if not isinstance(entries, list) or not entries:
        raise CredentialsError(f"{origin}: expected one or more [[credential]] tables")
    credentials = [_entry(entry, index, origin) for index, entry in enumerate(entries, 1)]
    try:
        return merge(credentials)
    except CredentialsError as exc:
        raise CredentialsError(f"{origin}: {exc}") from None


def _entry(entry: object, index: int, origin: str) -> Credential:
    where = f"{origin}: credential #{index}"
    if not isinstance(entry, dict):
        raise CredentialsError(f"{where}: expected a table")
    unknown = set(entry) - {"id", "username", "password", "source"}
    if unknown:
        raise CredentialsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    fields = {}
    for key in ("id", "username", "password", "source"):
        value = entry.get(key, origin if key == "source" else None)
        if not isinstance(value, str):
            raise CredentialsError(f"{where}: {key!r} must be a string")
        if key != "source" and (len(value) > _MAX_FIELD or not _PRINTABLE.fullmatch(value)):
            raise CredentialsError(
                f"{where}: {key!r} must be printable ASCII of at most {_MAX_FIELD} characters"
            )
        fields[key] = value
    if not _ID_PATTERN.fullmatch(fields["id"]):
        raise CredentialsError(f"{where}: id {fields['id']!r} must match {_ID_PATTERN.pattern}")
    return Credential(**fields)
