"""A task's run-log cursor across its tries (and a sensor's reschedules), kept in an Airflow Variable.

Shared by ``DataMasqueRunOperator`` and ``DataMasqueRunSensor`` so both resume the same way: a later
try (or reschedule poke) of the same task instance streams only the lines the earlier one did not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Exceptions that pause a try rather than end it (the task goes on in the triggerer or a later poke).
_PAUSES = ("TaskDeferred", "AirflowRescheduleException")
#: Failures Airflow never retries, whatever ``retries`` says.
_FINAL_FAILURES = ("AirflowFailException", "AirflowSensorTimeout", "AirflowSkipException")


class CursorVariable:
    """The Variable ``<prefix>.<dag>.<task>.<run id>.<map index>`` holding one task instance's cursor.

    No try number in the key, so a retry finds what the earlier try left. What is stored names its
    DataMasque run and the try that wrote it: a cursor for another run is ignored. Reading or
    writing the Variable never fails the task; the cost of a lost cursor is lines logged twice.
    """

    def __init__(self, key: str, try_number: int, log: Any) -> None:
        self.key = key
        self.try_number = try_number
        self.log = log

    @classmethod
    def for_task(cls, prefix: str, context: Mapping[str, Any], log: Any) -> CursorVariable:
        ti = context["ti"]
        key = f"{prefix}.{ti.dag_id}.{ti.task_id}.{context['run_id']}.{getattr(ti, 'map_index', -1)}"
        return cls(key, try_number(ti), log)

    def load(self, run_id: int) -> dict[str, Any] | None:
        """The saved monitor state for ``run_id`` (with the ``try`` that saved it), or None."""
        try:
            from airflow.providers.common.compat.sdk import Variable

            raw = Variable.get(self.key, None)
            state = json.loads(raw) if raw else None
        except Exception as exc:
            self.log.debug("Could not read the log cursor variable %s: %s", self.key, exc)
            return None
        if not isinstance(state, dict) or state.get("run_id") != run_id:
            return None
        return state

    def save(self, run_id: int, state: Mapping[str, Any]) -> None:
        try:
            from airflow.providers.common.compat.sdk import Variable

            Variable.set(self.key, json.dumps({**state, "run_id": run_id, "try": self.try_number}))
        except Exception as exc:  # A retry then streams more than it needs to; not worth failing for.
            self.log.debug("Could not save the log cursor variable %s: %s", self.key, exc)

    def clear(self) -> None:
        try:
            from airflow.providers.common.compat.sdk import Variable

            Variable.delete(self.key)
        except Exception as exc:  # Leaving a small Variable behind is not worth failing for.
            self.log.debug("Could not delete the log cursor variable %s: %s", self.key, exc)


def is_pause(exc: BaseException) -> bool:
    """A deferral or a reschedule: the try is not over, so its cursor must stay as it is."""
    return any(klass.__name__ in _PAUSES for klass in type(exc).__mro__)


def will_retry(context: Mapping[str, Any], exc: BaseException, retries: int | None) -> bool:
    """Whether Airflow will run this task instance again after ``exc`` (then its cursor is kept).

    Mirrors Airflow's rule: retries left (``try_number <= max_tries``) and not a failure that is
    never retried (fail, sensor timeout, skip).
    """
    if any(klass.__name__ in _FINAL_FAILURES for klass in type(exc).__mro__):
        return False
    ti = context.get("ti")
    max_tries = getattr(ti, "max_tries", None)
    if not isinstance(max_tries, int):
        max_tries = retries or 0
    return bool(retries) and try_number(ti) <= max_tries


def try_number(ti: Any) -> int:
    """The task instance's try number (1 when it has none, as in a bare ``execute`` call)."""
    value = getattr(ti, "try_number", 1)
    return value if isinstance(value, int) else 1
