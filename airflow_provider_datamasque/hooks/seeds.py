"""Seed files: CSVs that masks draw replacement values from."""

from __future__ import annotations

from typing import Any, BinaryIO

from airflow_provider_datamasque.hooks.resource import ResourceMixin, object_path

SEEDS_PATH = "/api/seeds/"


class SeedsMixin(ResourceMixin):
    """``/api/seeds/``."""

    def list_seeds(self) -> list[dict[str, Any]]:
        return list(self.client.paginate(SEEDS_PATH))

    def get_seed(self, seed_id: str | int) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json("GET", object_path("seeds", seed_id))
        return result

    def upload_seed(
        self,
        name: str,
        content: BinaryIO | bytes,
        *,
        filename: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Upload a seed CSV; a file object is streamed, not read into memory."""
        data = {"name": name}
        if description:
            data["description"] = description
        result: dict[str, Any] = self.client.request_json(
            "POST", SEEDS_PATH, data=data, files={"seed_file": (filename or name, content, "text/csv")}
        )
        return result
