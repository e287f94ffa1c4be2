"""In-memory store shared by all request threads: users, tokens, objects, journal, one lock."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_datamasque.emulator.runs import Run

ACTIVE_STATUSES = frozenset({"queued", "validating", "running", "cancelling"})
TERMINAL_STATUSES = frozenset({"finished", "finished_with_warnings", "failed", "cancelled"})
ALL_STATUSES = ACTIVE_STATUSES | TERMINAL_STATUSES


class ApiError(Exception):
    """An HTTP error answer; raised anywhere below the handler and rendered as JSON."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def not_found() -> ApiError:
    """DRF's generic 404."""
    return ApiError(404, {"detail": "Not found."})


def field_error(name: str, message: str) -> ApiError:
    """DRF-style single field error."""
    return ApiError(400, {name: [message]})


def iso(ts: float) -> str:
    """ISO-8601 UTC timestamp, the format the live API uses."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class JournalEntry:
    """One request as the emulator saw it; ``fault`` names the injected fault, if any."""

    method: str
    path: str
    query: str
    status: int
    time: float
    dropped: bool = False
    fault: str | None = None


@dataclass
class Token:
    """A login token (``kind="user"``, may expire under faults) or the user's api_token."""

    key: str
    kind: str
    uses: int = 0
    created: float = field(default_factory=time.time)


class Store:
    """All mutable emulator state. Every access goes through ``self.lock``."""

    def __init__(self, username: str, password: str) -> None:
        self.lock = threading.RLock()
        self.username = username
        self.password = password
        self.api_token = secrets.token_hex(20)
        self.user: dict[str, Any] = {
            "id": 1,
            "username": username,
            "email": f"{username}@example.com",
            "date_joined": iso(time.time()),
            "api_token": self.api_token,
            "has_temporary_password": False,
            "is_active": True,
            "is_staff": True,
            "is_superuser": True,
            "is_sso_user": False,
            "is_subscribed_to_sdd_updates": False,
            "user_roles": ["admin"],
        }
        self.tokens: dict[str, Token] = {self.api_token: Token(self.api_token, "api")}
        self.journal: list[JournalEntry] = []
        self.clear_objects()

    def clear_objects(self) -> None:
        """Drop every object (connections, rulesets, runs, files); keep the user and tokens."""
        with self.lock:
            self.connections: dict[str, dict[str, Any]] = {}
            self.rulesets: dict[str, dict[str, Any]] = {}
            self.runs: dict[int, Run] = {}
            self.seeds: dict[int, dict[str, Any]] = {}
            self.filesets: dict[int, dict[str, Any]] = {}
            self.wallets: dict[int, dict[str, Any]] = {}
            self._ids: dict[str, int] = {}
            self.runs_created = 0
            self.journal = []

    def next_id(self, kind: str) -> int:
        """Increasing integer ids per object kind, starting at 1."""
        with self.lock:
            value = self._ids.get(kind, 0) + 1
            self._ids[kind] = value
            return value

    def login(self, username: str, password: str) -> Token | None:
        """Issue a fresh user token for correct credentials."""
        if not (
            secrets.compare_digest(username, self.username)
            and secrets.compare_digest(password, self.password)
        ):
            return None
        token = Token(secrets.token_hex(20), "user")
        with self.lock:
            self.tokens[token.key] = token
        return token

    def authenticate(self, key: str, expiry_after: int | None) -> bool:
        """Check a token and count its use; login tokens die after ``expiry_after`` uses."""
        with self.lock:
            token = self.tokens.get(key)
            if token is None:
                return False
            if token.kind == "user":
                token.uses += 1
                if expiry_after is not None and token.uses > expiry_after:
                    del self.tokens[key]
                    return False
            return True

    def logout(self, key: str) -> None:
        """Forget a login token (the api_token survives logout)."""
        with self.lock:
            token = self.tokens.get(key)
            if token is not None and token.kind == "user":
                del self.tokens[key]

    def record(self, entry: JournalEntry) -> None:
        """Append to the request journal."""
        with self.lock:
            self.journal.append(entry)
