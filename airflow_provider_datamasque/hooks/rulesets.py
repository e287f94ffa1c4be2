"""Rulesets: the YAML that says what to mask."""

from __future__ import annotations

from typing import Any

from airflow_provider_datamasque.hooks.resource import ResourceMixin, object_path

RULESETS_PATH = "/api/rulesets/"
RULESETS_V2_PATH = "/api/v2/rulesets/"
MASK_TYPES = ("database", "file")


class RulesetsMixin(ResourceMixin):
    """``/api/rulesets/`` (and the newer list endpoint ``/api/v2/rulesets/``)."""

    def list_rulesets(self) -> list[dict[str, Any]]:
        """Every ruleset; uses the v2 list where the server has it, the v1 list otherwise."""
        from airflow_provider_datamasque.hooks.errors import DataMasqueNotFoundError

        try:
            return list(self.client.paginate(RULESETS_V2_PATH))
        except DataMasqueNotFoundError:
            return list(self.client.paginate(RULESETS_PATH))

    def get_ruleset(self, ruleset_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json("GET", object_path("rulesets", ruleset_id))
        return result

    def create_ruleset(self, name: str, config_yaml: str, mask_type: str = "database") -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json(
            "POST",
            RULESETS_PATH,
            json_body={"name": name, "config_yaml": config_yaml, "mask_type": mask_type},
        )
        return result

    def update_ruleset(
        self, ruleset_id: str, *, name: str, config_yaml: str, mask_type: str = "database"
    ) -> dict[str, Any]:
        body = {"name": name, "config_yaml": config_yaml, "mask_type": mask_type}
        result = self.client.request_json("PUT", object_path("rulesets", ruleset_id), json_body=body)
        # Some servers answer 204 to PUT: read the ruleset back so callers always get it.
        return result if isinstance(result, dict) and result.get("id") else self.get_ruleset(ruleset_id)

    def upsert_ruleset(self, name: str, config_yaml: str, mask_type: str = "database") -> dict[str, Any]:
        """Create the ruleset, or update the one with this name and mask type (``?upsert=true``).

        Repeating it gives the same result, so it is safe to retry.
        """
        result: dict[str, Any] = self.client.request_json(
            "POST",
            RULESETS_PATH,
            params={"upsert": "true"},
            json_body={"name": name, "config_yaml": config_yaml, "mask_type": mask_type},
            idempotent=True,
        )
        return result

    def delete_ruleset(self, ruleset_id: str, *, missing_ok: bool = True) -> None:
        self._delete_object(object_path("rulesets", ruleset_id), missing_ok)

    def find_ruleset(self, name: str, mask_type: str | None = None) -> dict[str, Any] | None:
        for item in self.list_rulesets():
            if item.get("name") == name and (
                mask_type is None or item.get("mask_type", "database") == mask_type
            ):
                return item
        return None

    def resolve_ruleset_id(self, name_or_id: str, mask_type: str | None = None) -> str:
        """UUID of a ruleset given by name or UUID; ``mask_type`` picks between same-named ones."""

        def candidates() -> list[dict[str, Any]]:
            items = self.list_rulesets()
            return [r for r in items if mask_type is None or r.get("mask_type", "database") == mask_type]

        return self._resolve_id(
            "ruleset",
            name_or_id,
            candidates,
            describe=lambda r: f"{r.get('mask_type', 'database')} ruleset {r.get('id')}",
            disambiguate="Pass mask_type='database' or 'file', or the ruleset's UUID.",
        )
