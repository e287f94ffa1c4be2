"""Task logging in test processes as a task process has it, on every supported Airflow line.

Used by ``tests/conftest.py`` and by child processes that run ``dag.test()`` themselves.
"""

from __future__ import annotations

import logging


class _NoDagTestEcho(logging.StreamHandler):  # type: ignore[type-arg]
    """Stands in for the echo handler ``dag.test()`` adds to the task logger on Airflow 2.11 and 3.0.

    Those versions add a ``StreamHandler(sys.stdout)`` to ``airflow.task`` unless it already has
    one. Airflow's own console handler (with the secrets masker) already prints every task record,
    so the echo doubled each line; and it kept the first test's captured stdout, which pytest closes
    ("I/O operation on closed file" in every later test). With this handler present, no echo is added.
    """

    def emit(self, record: logging.LogRecord) -> None:
        return None


def _configure_structlog_like_the_task_runner() -> None:
    """Airflow 3.0's ``dag.test()`` runs the task in-process without configuring structlog.

    structlog's defaults then print DEBUG records with no secrets-masking processor, and the
    in-process supervisor logs every message it passes at DEBUG, secrets included
    (``Sending request msg=MaskSecret(value=...)``, ``SetRenderedFields`` before redaction). A
    real task process gets the configured level and the masking processor from Airflow's
    ``configure_logging``; give the test process the same two. Airflow 2 has no structlog logging
    and 3.1+ configures it itself.

    Exceptions are rendered as a plain traceback. The console renderer ``logging_processors`` builds
    uses rich's traceback formatter, which ignores ``colored_console_log=False``: it wraps the
    exception text in ANSI colour codes (``failed with HTTP <ESC>[1;36m403<ESC>[0m``, so a test
    looking for the message does not find it) and prints every frame's local variables, which the
    masking processor never sees. A real 3.0 task process renders exceptions as plain structured
    data (no colours, no local variables).
    """
    try:
        import structlog
        from airflow.sdk.log import logging_processors
    except ImportError:
        return
    if structlog.is_configured():
        return
    from airflow.configuration import conf

    level = conf.get("logging", "logging_level", fallback="INFO").lower()
    processors, named = logging_processors(
        enable_pretty_log=True, mask_secrets=True, colored_console_log=False
    )
    plain = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    processors = [plain if processor is named.get("console") else processor for processor in processors]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(structlog.stdlib.NAME_TO_LEVEL[level]),
        cache_logger_on_first_use=False,
    )


def set_up_task_logging() -> None:
    """One masked copy of each task log record on stdout (imports Airflow)."""
    import airflow  # noqa: F401 - configures Airflow's logging

    task_log = logging.getLogger("airflow.task")
    if not any(isinstance(handler, logging.StreamHandler) for handler in task_log.handlers):
        task_log.addHandler(_NoDagTestEcho())
    _configure_structlog_like_the_task_runner()
