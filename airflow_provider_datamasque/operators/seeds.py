"""Upload a seed CSV (replacement values for masks) from local disk or object storage."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError, DataMasqueError
from airflow_provider_datamasque.operators._storage import conn_id_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook


def _is_bare_path(source: object) -> bool:
    return isinstance(source, str | os.PathLike) and "://" not in str(source)


class DataMasqueUploadSeedOperator(BaseOperator):
    """Upload a seed file to DataMasque, streaming it in chunks so large seeds need no memory.

    Seeds are usually generated or curated upstream (a CSV in S3, a file next to the DAG); this
    operator moves them into DataMasque without the task holding the whole file.

    :param name: Seed name in DataMasque (templated); rulesets refer to the seed by it.
    :param source: The seed file (templated): a local path, a URI such as ``file:///...`` or
        ``s3://bucket/seeds/names.csv`` (read through Airflow ObjectStoragePath, so the scheme's
        provider must be installed), or an ``ObjectStoragePath``.
    :param description: Optional description shown in DataMasque (templated).
    :param datamasque_conn_id: Airflow connection id of type ``datamasque``.
    :return: The seed id, pushed to XCom.
    """

    template_fields: Sequence[str] = ("name", "source", "description")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        name: str,
        source: str | os.PathLike[str] | ObjectStoragePath,
        description: str | None = None,
        datamasque_conn_id: str = "datamasque_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.source = source
        self.description = description
        self.datamasque_conn_id = datamasque_conn_id

    @cached_property
    def hook(self) -> DataMasqueHook:
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

        return DataMasqueHook(datamasque_conn_id=self.datamasque_conn_id)

    @staticmethod
    def _open_storage(storage: ObjectStoragePath) -> BinaryIO:
        """Open through Airflow's filesystem for the scheme, or plain fsspec when none is registered."""
        try:
            storage.fs  # noqa: B018 - raises ValueError when no Airflow provider serves the scheme
        except ValueError:
            if conn_id_of(storage):
                raise
            import fsspec

            try:
                fs, path = fsspec.core.url_to_fs(str(storage))
            except (ImportError, ValueError) as exc:
                # DataMasqueConfigError is not an OSError: execute() passes it through as it is.
                raise DataMasqueConfigError(f"unsupported storage ({exc})") from None
            return fs.open(path, "rb")  # type: ignore[no-any-return]
        return storage.open("rb")  # type: ignore[no-any-return]

    def execute(self, context: Context) -> int | str:
        if not isinstance(self.name, str) or not self.name.strip():
            raise DataMasqueConfigError(f"{type(self).__name__}: name must be a non-empty string.")
        source = self.source
        if source is None or (isinstance(source, str) and not source.strip()):
            raise DataMasqueConfigError(f"Seed {self.name!r}: source is empty; give a path or URI.")
        try:
            if _is_bare_path(source):
                path = os.path.abspath(os.fspath(source))  # type: ignore[arg-type]
                filename = os.path.basename(path)
                fileobj: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed below
            else:
                from airflow.providers.common.compat.sdk import ObjectStoragePath

                try:
                    storage = (
                        source if isinstance(source, ObjectStoragePath) else ObjectStoragePath(str(source))
                    )
                except (ValueError, TypeError) as exc:
                    raise DataMasqueConfigError(
                        f"Seed {self.name!r}: source {str(source)!r} is not a usable path or URI: {exc}"
                    ) from None
                filename = storage.name
                try:
                    fileobj = self._open_storage(storage)
                except DataMasqueConfigError as exc:
                    raise DataMasqueConfigError(
                        f"Seed {self.name!r}: source {str(source)!r}: {exc}"
                    ) from None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise DataMasqueConfigError(
                f"Seed {self.name!r}: source {str(source)!r} does not exist or is not a file "
                f"({type(exc).__name__})."
            ) from None
        except PermissionError:
            raise DataMasqueConfigError(
                f"Seed {self.name!r}: source {str(source)!r} cannot be read (permission denied)."
            ) from None
        with fileobj:
            self.log.info("Uploading seed %r from %s", self.name, source)
            seed = self.hook.upload_seed(
                self.name, fileobj, filename=filename or self.name, description=self.description or None
            )
        seed_id = seed.get("id") if isinstance(seed, dict) else None
        if seed_id is None:
            raise DataMasqueError(f"DataMasque accepted seed {self.name!r} but returned no id.")
        self.log.info("Seed %r uploaded (id %s, %s bytes)", self.name, seed_id, seed.get("size", "?"))
        return seed_id  # type: ignore[no-any-return]
