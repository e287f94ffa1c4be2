"""What every per-resource part of the hook shares: the client and name-to-id resolution."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from airflow_provider_datamasque.hooks.client import DataMasqueClient
from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError, DataMasqueNotFoundError

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def looks_like_uuid(value: str) -> bool:
    return bool(_UUID.match(value.strip()))


def object_path(collection: str, object_id: object) -> str:
    """``/api/<collection>/<id>/`` with the id checked, so a stray slash cannot change the URL."""
    text = str(object_id).strip()
    if not text or "/" in text or "?" in text or "#" in text:
        raise DataMasqueConfigError(f"Invalid DataMasque {collection} id {object_id!r}.")
    return f"/api/{collection}/{text}/"


class ResourceMixin:
    """Base of the per-resource mixins composed into ``DataMasqueHook``."""

    @property
    def client(self) -> DataMasqueClient:  # pragma: no cover - provided by the hook
        raise NotImplementedError

    def _resolve_id(
        self,
        kind: str,
        name_or_id: str,
        items: Callable[[], Iterable[dict[str, Any]]],
        *,
        describe: Callable[[dict[str, Any]], str] | None = None,
        disambiguate: str = "",
    ) -> str:
        """Turn a name or UUID into a UUID; unknown names list close matches."""
        if not isinstance(name_or_id, str) or not name_or_id.strip():
            raise DataMasqueConfigError(
                f"DataMasque {kind} must be a non-empty name or UUID, got {name_or_id!r}."
            )
        wanted = name_or_id.strip()
        if looks_like_uuid(wanted):
            return wanted
        candidates = list(items())
        matches = [item for item in candidates if item.get("name") == wanted]
        if len(matches) == 1:
            return str(matches[0]["id"])
        if len(matches) > 1:
            shown = ", ".join(describe(m) if describe else str(m.get("id")) for m in matches)
            raise DataMasqueConfigError(
                f"DataMasque {kind} name {wanted!r} is ambiguous: {len(matches)} {kind}s share it ({shown}). "
                f"{disambiguate or 'Pass the UUID instead of the name.'}"
            )
        names = sorted({str(item.get("name")) for item in candidates if item.get("name")})
        close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.5)
        hint = f" Close matches: {', '.join(repr(n) for n in close)}." if close else ""
        raise DataMasqueNotFoundError(
            f"No DataMasque {kind} named {wanted!r}.{hint} "
            f"Check the name in DataMasque or pass the {kind}'s UUID.",
            status=404,
        )

    def _delete_object(self, path: str, missing_ok: bool) -> None:
        """DELETE; a 404 means it is already gone, which is what the caller wanted."""
        try:
            self.client.request("DELETE", path)
        except DataMasqueNotFoundError:
            if not missing_ok:
                raise
