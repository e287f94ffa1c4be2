"""Keep a DataMasque ruleset in step with YAML kept next to the DAG."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError, DataMasqueError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

MASK_TYPES = ("database", "file")
IF_EXISTS = ("update", "skip", "fail")


def normalise_yaml(text: str) -> str:
    """YAML text with line endings, trailing spaces and trailing blank lines made uniform.

    Used to decide "unchanged": editors and the server differ in exactly these details.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def check_yaml_syntax(text: str, ruleset_name: str) -> None:
    """Parse locally so a typo fails the task before anything is sent to DataMasque."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise DataMasqueConfigError(
            f"Ruleset {ruleset_name!r}: config_yaml is not valid YAML: {where}{problem}{context}."
        ) from None
    except yaml.YAMLError as exc:
        raise DataMasqueConfigError(
            f"Ruleset {ruleset_name!r}: config_yaml is not valid YAML: {exc}."
        ) from None
    if not isinstance(document, Mapping):
        hint = ""
        if isinstance(document, str) and document.strip().endswith((".yaml", ".yml")):
            hint = (
                " It looks like a file name that was not rendered: the file must sit in the DAG "
                "folder or a template_searchpath of the DAG."
            )
        raise DataMasqueConfigError(
            f"Ruleset {ruleset_name!r}: config_yaml must be a YAML mapping with a 'tasks' list, "
            f"got {type(document).__name__}.{hint}"
        )


def validity_of(ruleset: Mapping[str, Any]) -> str:
    """``valid``/``invalid``/``in_progress``/``unknown``; older servers send a boolean."""
    value = ruleset.get("is_valid")
    if value is True:
        return "valid"
    if value is False:
        return "invalid"
    if isinstance(value, str) and value.strip().lower() in ("valid", "invalid", "in_progress", "unknown"):
        return value.strip().lower()
    return "unknown"


def format_validation_errors(errors: Any) -> list[str]:
    """Server validation errors as ``line 7, column 3: message`` strings."""
    if errors is None:
        return []
    if isinstance(errors, Mapping | str):
        errors = [errors]
    lines: list[str] = []
    for error in errors:
        if not isinstance(error, Mapping):
            lines.append(str(error))
            continue
        message = str(error.get("message") or error.get("detail") or error).strip()
        line, column = error.get("line_number"), error.get("column_number")
        if line is not None and column is not None:
            lines.append(f"line {line}, column {column}: {message}")
        elif line is not None:
            lines.append(f"line {line}: {message}")
        else:
            lines.append(message)
    return lines


class DataMasqueCreateRulesetOperator(BaseOperator):
    """Create or update a DataMasque ruleset from YAML, and fail early if DataMasque rejects it.

    DataMasque saves invalid rulesets and only complains when a run starts; this operator reads
    the validation result after saving so a broken ruleset fails here, with line numbers, instead
    of half-way through a masking pipeline. Re-running with unchanged YAML sends no write.

    :param name: Ruleset name (templated). Rulesets are unique per name and ``mask_type``.
    :param config_yaml: Ruleset YAML text, or the path of a ``.yaml``/``.yml`` file next to the DAG
        (or on its ``template_searchpath``); both are rendered with Jinja (templated).
    :param mask_type: ``"database"`` or ``"file"``.
    :param if_exists: What to do when a ruleset with this name and mask type exists:
        ``"update"`` (replace its YAML if it differs), ``"skip"`` (leave it, return its id) or
        ``"fail"``.
    :param fail_if_invalid: Raise when DataMasque reports the saved ruleset invalid; otherwise
        only log a warning.
    :param validation_timeout: Seconds to wait for asynchronous validation (large rulesets).
    :param poll_interval: Seconds between validity checks while validation is in progress.
    :param datamasque_conn_id: Airflow connection id of type ``datamasque``.
    :return: The ruleset id (UUID string), pushed to XCom.
    """

    template_fields: Sequence[str] = ("name", "config_yaml")
    template_ext: Sequence[str] = (".yaml", ".yml")
    template_fields_renderers = {"config_yaml": "yaml"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        name: str,
        config_yaml: str,
        mask_type: str = "database",
        if_exists: str = "update",
        fail_if_invalid: bool = True,
        validation_timeout: float = 300,
        poll_interval: float = 5,
        datamasque_conn_id: str = "datamasque_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mask_type not in MASK_TYPES:
            raise DataMasqueConfigError(
                f"{type(self).__name__}: mask_type must be one of {', '.join(MASK_TYPES)}; got {mask_type!r}."
            )
        if if_exists not in IF_EXISTS:
            raise DataMasqueConfigError(
                f"{type(self).__name__}: if_exists must be one of {', '.join(IF_EXISTS)}; got {if_exists!r}."
            )
        if validation_timeout < 0:
            raise DataMasqueConfigError(
                f"{type(self).__name__}: validation_timeout must be >= 0, got {validation_timeout!r}."
            )
        if poll_interval <= 0:
            raise DataMasqueConfigError(
                f"{type(self).__name__}: poll_interval must be > 0, got {poll_interval!r}."
            )
        self.name = name
        self.config_yaml = config_yaml
        self.mask_type = mask_type
        self.if_exists = if_exists
        self.fail_if_invalid = fail_if_invalid
        self.validation_timeout = validation_timeout
        self.poll_interval = poll_interval
        self.datamasque_conn_id = datamasque_conn_id

    @cached_property
    def hook(self) -> DataMasqueHook:
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

        return DataMasqueHook(datamasque_conn_id=self.datamasque_conn_id)

    def _check_arguments(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise DataMasqueConfigError(f"{type(self).__name__}: name must be a non-empty string.")
        if not isinstance(self.config_yaml, str) or not self.config_yaml.strip():
            raise DataMasqueConfigError(
                f"Ruleset {self.name!r}: config_yaml must be non-empty YAML text or a .yaml/.yml file path."
            )
        check_yaml_syntax(self.config_yaml, self.name)

    def execute(self, context: Context) -> str:
        self._check_arguments()
        hook = self.hook
        existing = hook.find_ruleset(self.name, self.mask_type)
        if existing is None:
            self.log.info("Creating %s ruleset %r", self.mask_type, self.name)
            ruleset = hook.create_ruleset(self.name, self.config_yaml, self.mask_type)
        else:
            ruleset_id = str(existing["id"])
            if self.if_exists == "fail":
                raise DataMasqueError(
                    f"A DataMasque {self.mask_type} ruleset named {self.name!r} already exists "
                    f"(id {ruleset_id}) and if_exists='fail'."
                )
            if self.if_exists == "skip":
                self.log.info(
                    "%s ruleset %r already exists (id %s); if_exists='skip', leaving it as it is",
                    self.mask_type.capitalize(),
                    self.name,
                    ruleset_id,
                )
                return ruleset_id
            current = existing if "config_yaml" in existing else hook.get_ruleset(ruleset_id)
            if normalise_yaml(str(current.get("config_yaml") or "")) == normalise_yaml(self.config_yaml):
                self.log.info("Ruleset %r (id %s) unchanged; nothing to update", self.name, ruleset_id)
                ruleset = current if "is_valid" in current else hook.get_ruleset(ruleset_id)
            else:
                self.log.info("Updating ruleset %r (id %s)", self.name, ruleset_id)
                ruleset = hook.update_ruleset(
                    ruleset_id, name=self.name, config_yaml=self.config_yaml, mask_type=self.mask_type
                )
        ruleset_id = str(ruleset.get("id") or (existing or {}).get("id"))
        self._check_validity(ruleset, ruleset_id)
        return ruleset_id

    def _check_validity(self, ruleset: Mapping[str, Any], ruleset_id: str) -> None:
        """Wait out asynchronous validation, then fail (or warn) on an invalid ruleset."""
        state = validity_of(ruleset)
        deadline = time.monotonic() + self.validation_timeout
        while state == "in_progress":
            if time.monotonic() >= deadline:
                message = (
                    f"Ruleset {self.name!r} (id {ruleset_id}) is still being validated after "
                    f"{self.validation_timeout:g}s; raise validation_timeout or check it in DataMasque."
                )
                if self.fail_if_invalid:
                    raise DataMasqueError(message)
                self.log.warning("%s", message)
                return
            self.log.info(
                "Ruleset %r is being validated; checking again in %gs", self.name, self.poll_interval
            )
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
            ruleset = self.hook.get_ruleset(ruleset_id)
            state = validity_of(ruleset)
        if state == "valid":
            self.log.info("Ruleset %r (id %s) is valid", self.name, ruleset_id)
            return
        if state == "unknown":
            self.log.warning(
                "DataMasque did not say whether ruleset %r (id %s) is valid (is_valid=%r)",
                self.name,
                ruleset_id,
                ruleset.get("is_valid"),
            )
            return
        problems = format_validation_errors(ruleset.get("validation_errors")) or ["(no details given)"]
        message = f"DataMasque reports ruleset {self.name!r} (id {ruleset_id}) invalid:\n  " + "\n  ".join(
            problems
        )
        if self.fail_if_invalid:
            raise DataMasqueConfigError(message)
        self.log.warning("%s", message)
