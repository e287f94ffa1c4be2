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
        """Upload a seed CSV; a file object is streamed in chunks, never held in memory whole.

        The body is sent with a Content-Length when the file is seekable (its size is known), else
        chunked. A request replayed after a 429 or a re-login starts the file over; a non-seekable
        source that was partly sent is refused rather than sent truncated.
        """
        import io

        from airflow_provider_datamasque.hooks.multipart import MultipartStream

        fields = {"name": name}
        if description:
            fields["description"] = description
        fileobj = io.BytesIO(content) if isinstance(content, bytes | bytearray) else content
        body = MultipartStream(
            fields, "seed_file", fileobj, filename=filename or name, content_type="text/csv"
        )
        result: dict[str, Any] = self.client.request_json(
            "POST", SEEDS_PATH, data=body, headers={"Content-Type": body.content_type}
        )
        return result
