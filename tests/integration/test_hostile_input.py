"""The reader on hostile input, through Dagster: a headerless extract fails its step with one
line and no NHS number, in any form, in the run's log (the reader's own tests are in
tests/unit/test_hostile_input.py)."""

from __future__ import annotations

import dagster as dg

from tests.helpers import (
    EVENTS_HEADER,
    REGISTER,
    V0,
    V1,
    assert_no_form_of,
    digits_of,
    register_row,
    write_csv,
)


def test_a_headerless_extract_leaves_no_nhs_number_in_the_dagster_log(tmp_path):
    from pipelines.definitions import defs

    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    write_csv(raw / "gp_patients" / REGISTER, register_row(V0), [register_row(V1)])
    write_csv(raw / "gp_events" / "gp_events_2025-03-31.csv", EVENTS_HEADER, [])
    write_csv(raw / "gp_medications" / "gp_medications_2025-03-31.csv", ["nhs_number"], [])
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("main").execute_in_process(
        asset_selection=[dg.AssetKey(["conformed", "gp_patients"])],
        run_config={
            "resources": {
                "settings": {
                    "config": {
                        "raw_dir": str(raw),
                        "warehouse_dir": str(warehouse),
                        "publish_dir": str(tmp_path / "published"),
                    }
                }
            }
        },
        instance=instance,
        raise_on_error=False,
    )
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    failures = [e.step_failure_data for e in result.all_events if e.is_step_failure]
    messages += [f.user_failure_data.description for f in failures if f.user_failure_data]
    messages += [f.error.to_string() for f in failures]
    assert any("header row missing or unrecognised" in m for m in messages)
    for message in messages:
        assert_no_form_of(V0, message)
        assert V1 not in digits_of(message)
    ledger = (warehouse / "conformed" / "gp_patients.json").read_text()
    assert V0 not in digits_of(ledger)
