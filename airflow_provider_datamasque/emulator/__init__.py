"""An in-process DataMasque API emulator (standard library + PyYAML only; no Airflow, no requests).

Start one with ``DataMasqueEmulator(...).start()`` (or as a context manager) or from the shell with
``python -m airflow_provider_datamasque.emulator``. Run lifecycle and the ``[emulator:...]`` outcome
markers are documented in :mod:`airflow_provider_datamasque.emulator.runs`; fault injection in
:mod:`airflow_provider_datamasque.emulator.faults`.
"""

from airflow_provider_datamasque.emulator.emulator import DEFAULT_PASSWORD, DataMasqueEmulator
from airflow_provider_datamasque.emulator.faults import FaultConfig
from airflow_provider_datamasque.emulator.state import ApiError, JournalEntry

__all__ = ["DEFAULT_PASSWORD", "ApiError", "DataMasqueEmulator", "FaultConfig", "JournalEntry"]
