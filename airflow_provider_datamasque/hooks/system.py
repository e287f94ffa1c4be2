"""Installation, licence, health and Oracle wallets: the administrative endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO

from airflow_provider_datamasque.hooks.resource import ResourceMixin, object_path

WALLETS_PATH = "/api/oracle-wallets/"


class SystemMixin(ResourceMixin):
    """Health check, app check, admin install, licence upload and Oracle wallets."""

    def health_check(self) -> dict[str, Any]:
        """``/api/healthcheck/`` (the path the official client uses), else ``/api/health-check/``."""
        from airflow_provider_datamasque.hooks.errors import DataMasqueNotFoundError

        try:
            result = self.client.request_json("GET", "/api/healthcheck/", authenticated=False)
        except DataMasqueNotFoundError:
            result = self.client.request_json("GET", "/api/health-check/", authenticated=False)
        return result if isinstance(result, dict) else {}

    def app_check(self) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json("GET", "/api/app/check/", authenticated=False)
        return result

    def admin_install(
        self,
        *,
        email: str,
        username: str,
        password: str,
        allowed_hosts: Sequence[str] = (),
        aws_ec2_instance_id: str | None = None,
    ) -> dict[str, Any]:
        """Set up the first admin account of a new installation (401 once a user exists)."""
        body: dict[str, Any] = {
            "email": email,
            "username": username,
            "password": password,
            "re_password": password,
            "allowed_hosts": list(allowed_hosts),
        }
        if aws_ec2_instance_id:
            body["aws_ec2_instance_id"] = aws_ec2_instance_id
        result: dict[str, Any] = self.client.request_json(
            "POST", "/api/users/admin-install/", json_body=body, authenticated=False
        )
        return result

    def upload_licence(
        self, licence: BinaryIO | bytes, *, filename: str = "license.lic"
    ) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.client.request_json(
            "POST", "/api/license-upload/", files={"license_file": (filename, licence)}
        )
        return result

    def list_oracle_wallets(self) -> list[dict[str, Any]]:
        return list(self.client.paginate(WALLETS_PATH))

    def create_oracle_wallet(
        self, name: str, wallet: BinaryIO | bytes, *, filename: str = "wallet.zip"
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json(
            "POST",
            WALLETS_PATH,
            data={"name": name},
            files={"zip_archive": (filename, wallet, "application/zip")},
        )
        return result

    def delete_oracle_wallet(self, wallet_id: str | int, *, missing_ok: bool = True) -> None:
        self._delete_object(object_path("oracle-wallets", wallet_id), missing_ok)
