"""DataMasqueCreateRulesetOperator: unit tests (requests-mock) and emulator integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_datamasque.emulator.samples import MASK_RULESET_YAML as MASK_YAML
from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError, DataMasqueError
from airflow_provider_datamasque.operators import rulesets as rulesets_module
from airflow_provider_datamasque.operators.rulesets import (
    DataMasqueCreateRulesetOperator,
    format_validation_errors,
    normalise_yaml,
    validity_of,
)

from .conftest_resources import (
    BASE,
    RULESET_ID,
    TYPO_YAML,
    api_calls,
    make_dag,
    writes,
)

V2_LIST = f"{BASE}/api/v2/rulesets/"
COLLECTION = f"{BASE}/api/rulesets/"
OBJECT = f"{BASE}/api/rulesets/{RULESET_ID}/"


def op(**kwargs: Any) -> DataMasqueCreateRulesetOperator:
    params: dict[str, Any] = {"task_id": "ruleset", "name": "customers", "config_yaml": MASK_YAML}
    params.update(kwargs)
    return DataMasqueCreateRulesetOperator(**params)


def saved(yaml_text: str = MASK_YAML, is_valid: Any = "valid", errors: Any = None) -> dict[str, Any]:
    return {
        "id": RULESET_ID,
        "name": "customers",
        "mask_type": "database",
        "config_yaml": yaml_text,
        "is_valid": is_valid,
        "validation_errors": errors or [],
    }


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    sleeps: list[float] = []

    class FakeTime:
        def __init__(self) -> None:
            self.now = 0.0

        def monotonic(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            sleeps.append(seconds)
            self.now += seconds

    monkeypatch.setattr(rulesets_module, "time", FakeTime())
    return sleeps


# -- argument checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mask_type": "table"}, "mask_type"),
        ({"if_exists": "replace"}, "if_exists"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"validation_timeout": -1}, "validation_timeout"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DataMasqueConfigError, match=fragment):
        op(**kwargs)


def test_yaml_syntax_error_names_line_and_column_without_any_request(mock_api: Any) -> None:
    bad = "version: '1.0'\ntasks:\n  - type: mask_table\n    table: [customers\n"
    with pytest.raises(DataMasqueConfigError) as excinfo:
        op(config_yaml=bad).execute({})
    message = str(excinfo.value)
    assert "customers" in message and "not valid YAML" in message
    assert "line 5, column 1" in message
    assert "expected ',' or ']'" in message
    assert mock_api.request_history == []


def test_yaml_bad_indentation_points_at_line(mock_api: Any) -> None:
    bad = "version: '1.0'\ntasks:\n  - type: mask_table\n   table: customers\n"
    with pytest.raises(DataMasqueConfigError, match=r"line 4, column 4: expected <block end>"):
        op(config_yaml=bad).execute({})
    assert mock_api.request_history == []


def test_unrendered_file_name_gets_a_hint(mock_api: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match="not rendered"):
        op(config_yaml="rulesets/customers.yaml ").execute({})
    assert mock_api.request_history == []


def test_empty_name_is_refused(mock_api: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match="name"):
        op(name=" ").execute({})
    assert mock_api.request_history == []


# -- helpers ----------------------------------------------------------------------------------------


def test_normalise_yaml_ignores_trailing_whitespace_and_line_endings() -> None:
    assert normalise_yaml("a: 1  \r\nb: 2\n\n\n") == normalise_yaml("a: 1\nb: 2")
    assert normalise_yaml("a: 1\n") != normalise_yaml("a: 2\n")
    assert normalise_yaml("  a: 1\n") != normalise_yaml("a: 1\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "valid"),
        (False, "invalid"),
        ("valid", "valid"),
        ("INVALID", "invalid"),
        ("in_progress", "in_progress"),
        ("unknown", "unknown"),
        (None, "unknown"),
        ("weird", "unknown"),
    ],
)
def test_validity_of(value: Any, expected: str) -> None:
    assert validity_of({"is_valid": value}) == expected


def test_format_validation_errors() -> None:
    errors = [
        {"message": "Unknown task type 'mask_tabel'", "line_number": 7, "column_number": 3},
        {"message": "No line", "line_number": None, "column_number": None},
        {"message": "Line only", "line_number": 2},
        "plain text",
    ]
    assert format_validation_errors(errors) == [
        "line 7, column 3: Unknown task type 'mask_tabel'",
        "No line",
        "line 2: Line only",
        "plain text",
    ]
    assert format_validation_errors(None) == []


# -- behaviour against requests-mock ------------------------------------------------------------------


def test_creates_when_missing(mock_api: Any) -> None:
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved())
    assert op().execute({}) == RULESET_ID
    post = api_calls(mock_api, "POST")[0]
    assert post.json() == {"name": "customers", "config_yaml": MASK_YAML, "mask_type": "database"}


def test_finds_by_name_and_mask_type(mock_api: Any) -> None:
    other = saved() | {"id": "other", "mask_type": "file"}
    mock_api.get(V2_LIST, json=[other])
    mock_api.post(COLLECTION, status_code=201, json=saved())
    assert op().execute({}) == RULESET_ID
    assert len(api_calls(mock_api, "POST")) == 1


def test_falls_back_to_v1_list(mock_api: Any) -> None:
    mock_api.get(V2_LIST, status_code=404, json={"detail": "Not found."})
    mock_api.get(COLLECTION, json=[saved()])
    assert op(if_exists="skip").execute({}) == RULESET_ID


def test_unchanged_yaml_sends_no_write(mock_api: Any, logs: Any) -> None:
    mock_api.get(V2_LIST, json=[saved(MASK_YAML.rstrip("\n") + "   \n\n")])
    assert op().execute({}) == RULESET_ID
    assert [r.method for r in api_calls(mock_api)] == ["GET"]
    assert "unchanged" in logs()


def test_list_without_yaml_reads_the_ruleset(mock_api: Any) -> None:
    listed = {k: v for k, v in saved().items() if k not in ("config_yaml", "is_valid")}
    mock_api.get(V2_LIST, json=[listed])
    mock_api.get(OBJECT, json=saved())
    assert op().execute({}) == RULESET_ID
    assert [r.method for r in api_calls(mock_api)] == ["GET", "GET"]


def test_changed_yaml_is_updated(mock_api: Any) -> None:
    mock_api.get(V2_LIST, json=[saved("version: '1.0'\ntasks: []\n")])
    mock_api.put(OBJECT, json=saved())
    assert op().execute({}) == RULESET_ID
    put = api_calls(mock_api, "PUT")[0]
    assert put.json() == {"name": "customers", "config_yaml": MASK_YAML, "mask_type": "database"}


def test_update_answered_204_reads_back(mock_api: Any) -> None:
    mock_api.get(V2_LIST, json=[saved("version: '1.0'\ntasks: []\n")])
    mock_api.put(OBJECT, status_code=204)
    mock_api.get(OBJECT, json=saved())
    assert op().execute({}) == RULESET_ID


def test_skip_returns_existing_id_without_writes(mock_api: Any) -> None:
    mock_api.get(V2_LIST, json=[saved("version: '1.0'\ntasks: []\n")])
    assert op(if_exists="skip").execute({}) == RULESET_ID
    assert [r.method for r in api_calls(mock_api)] == ["GET"]


def test_fail_when_it_exists(mock_api: Any) -> None:
    mock_api.get(V2_LIST, json=[saved()])
    with pytest.raises(DataMasqueError, match="already exists"):
        op(if_exists="fail").execute({})
    assert [r.method for r in api_calls(mock_api)] == ["GET"]


def test_invalid_on_server_lists_errors_with_line_numbers(mock_api: Any) -> None:
    errors = [
        {
            "message": "Unknown task type 'mask_tabel'",
            "validation_error_type": "ruleset",
            "line_number": 7,
            "column_number": 3,
        }
    ]
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved(is_valid="invalid", errors=errors))
    with pytest.raises(DataMasqueConfigError, match=r"line 7, column 3: Unknown task type 'mask_tabel'"):
        op().execute({})


def test_invalid_boolean_from_older_server(mock_api: Any) -> None:
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved(is_valid=False, errors=["Bad ruleset"]))
    with pytest.raises(DataMasqueConfigError, match="Bad ruleset"):
        op().execute({})


def test_invalid_only_warns_when_asked(mock_api: Any, logs: Any) -> None:
    errors = [{"message": "Unknown task type 'mask_tabel'", "line_number": 7, "column_number": 3}]
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved(is_valid="invalid", errors=errors))
    assert op(fail_if_invalid=False).execute({}) == RULESET_ID
    assert "line 7, column 3" in logs()


def test_valid_boolean_from_older_server(mock_api: Any) -> None:
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved(is_valid=True))
    assert op().execute({}) == RULESET_ID


def test_in_progress_is_polled_until_valid(mock_api: Any, no_sleep: list[float]) -> None:
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved(is_valid="in_progress"))
    mock_api.get(
        OBJECT,
        [{"json": saved(is_valid="in_progress")}, {"json": saved(is_valid="valid")}],
    )
    assert op(poll_interval=2).execute({}) == RULESET_ID
    assert no_sleep == [2, 2]
    assert len(api_calls(mock_api, "GET")) == 3


def test_in_progress_then_invalid(mock_api: Any) -> None:
    errors = [{"message": "Unknown task type 'x'", "line_number": 3, "column_number": 11}]
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved(is_valid="in_progress"))
    mock_api.get(OBJECT, json=saved(is_valid="invalid", errors=errors))
    with pytest.raises(DataMasqueConfigError, match="line 3, column 11"):
        op().execute({})


def test_in_progress_times_out(mock_api: Any, no_sleep: list[float]) -> None:
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved(is_valid="in_progress"))
    mock_api.get(OBJECT, json=saved(is_valid="in_progress"))
    with pytest.raises(DataMasqueError, match="still being validated after 10s"):
        op(validation_timeout=10, poll_interval=3).execute({})
    assert sum(no_sleep) == pytest.approx(10)


def test_unknown_validity_warns(mock_api: Any, logs: Any) -> None:
    mock_api.get(V2_LIST, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved(is_valid="unknown"))
    assert op().execute({}) == RULESET_ID
    assert "did not say whether" in logs()


# -- templating -------------------------------------------------------------------------------------


def test_config_yaml_file_next_to_the_dag_is_rendered(tmp_path: Path) -> None:
    (tmp_path / "customers.yaml").write_text(
        "version: '1.0'\ntasks:\n  - type: mask_table\n    table: {{ params.table }}\n"
    )
    with make_dag("ruleset_file", template_searchpath=[str(tmp_path)], params={"table": "clients"}):
        task = op(name="rs-{{ params.table }}", config_yaml="customers.yaml")
    task.render_template_fields({"params": {"table": "clients"}})
    assert task.name == "rs-clients"
    assert "table: clients" in task.config_yaml


# -- against the emulator ---------------------------------------------------------------------------


@pytest.mark.integration
def test_emulator_create_update_unchanged(emu: Any) -> None:
    first = op().execute({})
    assert emu.count_requests("POST", r"/api/rulesets/") == 1

    before = len(writes(emu))
    assert op(config_yaml=MASK_YAML + "\n\n").execute({}) == first
    assert writes(emu)[before:] == []

    changed = MASK_YAML.replace("nobody@example.com", "someone@example.com")
    assert op(config_yaml=changed).execute({}) == first
    assert emu.count_requests("PUT", rf"/api/rulesets/{first}/") == 1
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    assert DataMasqueHook().get_ruleset(first)["config_yaml"] == changed


@pytest.mark.integration
def test_emulator_skip_and_fail(emu: Any) -> None:
    existing = emu.create_ruleset("customers", "version: '1.0'\ntasks: []\n")
    assert op(if_exists="skip").execute({}) == existing["id"]
    with pytest.raises(DataMasqueError, match="already exists"):
        op(if_exists="fail").execute({})
    assert writes(emu) == []


@pytest.mark.integration
def test_emulator_file_ruleset_is_separate(emu: Any) -> None:
    database_id = op().execute({})
    file_id = op(mask_type="file", config_yaml="version: '1.0'\ntasks:\n  - type: mask_file\n").execute({})
    assert database_id != file_id


@pytest.mark.integration
def test_emulator_invalid_ruleset_reports_line(emu: Any) -> None:
    with pytest.raises(DataMasqueConfigError) as excinfo:
        op(config_yaml=TYPO_YAML).execute({})
    assert "line 7, column 11: Unknown task type 'mask_tabel'" in str(excinfo.value)


@pytest.mark.integration
def test_emulator_local_syntax_error_sends_nothing(emu: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match="line"):
        op(config_yaml="tasks: [\n").execute({})
    assert emu.journal == []
