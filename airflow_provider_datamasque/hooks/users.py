"""Users and the token endpoints."""

from __future__ import annotations

from typing import Any

from airflow_provider_datamasque.hooks.resource import ResourceMixin


class UsersMixin(ResourceMixin):
    """``/api/users/`` and login."""

    def login(self) -> str:
        """Log in with the connection's Login/Password and return the user token (12 h lifetime)."""
        return self.client.login()

    def list_users(self) -> list[dict[str, Any]]:
        return list(self.client.paginate("/api/users/"))

    def get_current_user(self) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json("GET", "/api/users/me/")
        self.client.scrubber.add(str(result.get("api_token") or ""))
        return result
