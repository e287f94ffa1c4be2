"""The operator tests' fixtures, defined once in ``conftest_resources`` (which also holds plain helpers)."""

from .conftest_resources import emu, logs, mock_api  # noqa: F401
