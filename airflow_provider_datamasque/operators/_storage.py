"""ObjectStoragePath differences between Airflow lines, in one place."""

from __future__ import annotations


def conn_id_of(path: object) -> str | None:
    """The Airflow connection id an ObjectStoragePath was made with.

    Airflow 3's path has a ``conn_id`` attribute; Airflow 2.11's keeps it only in
    ``storage_options`` (and raises AttributeError for ``conn_id``).
    """
    conn_id = getattr(path, "conn_id", None)
    if conn_id is None:
        conn_id = (getattr(path, "storage_options", None) or {}).get("conn_id")
    return str(conn_id) if conn_id else None
