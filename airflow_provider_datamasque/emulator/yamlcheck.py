"""Ruleset YAML validation and the little structure runs need (tasks, masked columns).

Validation is deliberately shallow: YAML syntax, a ``tasks`` list, and known task types. That is
enough for the emulator to give ``is_valid`` / ``validation_errors`` with line numbers and for runs
to refuse invalid rulesets the way the server does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

KNOWN_TASK_TYPES = frozenset(
    {
        "mask_table",
        "mask_unique_key",
        "mask_primary_key",
        "run_data_discovery",
        "run_schema_discovery",
        "truncate_table",
        "run_sql",
        "build_temp_table",
        "parallel",
        "serial",
        "mask_file",
        "mask_tabular_file",
        "mask_dynamo_table",
        "mask_collection",
    }
)
NESTING_TASK_TYPES = frozenset({"parallel", "serial"})


@dataclass
class TaskInfo:
    """One (flattened) task: its type, the table it touches and the columns it masks."""

    type: str
    table: str = ""
    columns: list[str] = field(default_factory=list)


@dataclass
class RulesetAnalysis:
    """Result of checking a ruleset's YAML."""

    is_valid: str = "valid"
    validation_errors: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[TaskInfo] = field(default_factory=list)

    @property
    def has_discovery(self) -> bool:
        """A ``run_data_discovery`` task makes the run produce an SDD report."""
        return any(t.type == "run_data_discovery" for t in self.tasks)

    def masked_columns(self) -> dict[str, set[str]]:
        """Table name -> columns that some ``mask_table`` task masks."""
        out: dict[str, set[str]] = {}
        for task in self.tasks:
            if task.type in ("mask_table", "mask_unique_key", "mask_primary_key") and task.table:
                out.setdefault(task.table, set()).update(task.columns)
        return out


def _error(message: str, line: int | None, column: int | None) -> dict[str, Any]:
    return {
        "message": message,
        "validation_error_type": "ruleset",
        "line_number": line,
        "column_number": column,
    }


def _scalar(node: yaml.Node | None) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def _mapping(node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {_scalar(k): v for k, v in node.value}


def _walk_tasks(seq: yaml.Node, result: RulesetAnalysis) -> None:
    if not isinstance(seq, yaml.SequenceNode):
        mark = seq.start_mark
        result.validation_errors.append(_error("'tasks' must be a list.", mark.line + 1, mark.column + 1))
        return
    for item in seq.value:
        mark = item.start_mark
        fields = _mapping(item)
        task_type = _scalar(fields.get("type"))
        if not task_type:
            result.validation_errors.append(
                _error("Each task needs a 'type'.", mark.line + 1, mark.column + 1)
            )
            continue
        if task_type not in KNOWN_TASK_TYPES:
            type_mark = fields["type"].start_mark
            result.validation_errors.append(
                _error(f"Unknown task type '{task_type}'.", type_mark.line + 1, type_mark.column + 1)
            )
            continue
        if task_type in NESTING_TASK_TYPES:
            if "tasks" in fields:
                _walk_tasks(fields["tasks"], result)
            continue
        columns = [
            _scalar(_mapping(rule).get("column")) for rule in getattr(fields.get("rules"), "value", [])
        ]
        result.tasks.append(TaskInfo(task_type, _scalar(fields.get("table")), [c for c in columns if c]))


def analyse_ruleset(text: str) -> RulesetAnalysis:
    """Check ``text`` like the server's validator would (minus the masking semantics)."""
    result = RulesetAnalysis()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        result.validation_errors.append(_error(f"YAML syntax error: {exc.problem or exc}", line, column))
    except yaml.YAMLError as exc:
        result.validation_errors.append(_error(f"YAML syntax error: {exc}", None, None))
    else:
        top = _mapping(root) if root is not None else {}
        if "tasks" not in top:
            result.validation_errors.append(_error("Ruleset must contain a 'tasks' list.", 1, 1))
        else:
            _walk_tasks(top["tasks"], result)
    if result.validation_errors:
        result.is_valid = "invalid"
    return result
