"""The Dagster UI for real: `dagster dev` (webserver, daemon, code server) on a free port with a
temporary instance, driven by headless Chromium and the UI's GraphQL endpoint.

Needs Debian's `chromium` and Playwright for Python (`.ci/run` installs chromium; Playwright's
own browser download is never used). `INDICES_REFRESH_SCREENSHOT=1` (`make screenshot`) saves
the asset graph to docs/asset-graph.png."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest
from playwright import sync_api

from pipelines.partitions import range_tags
from tests.conftest import DEMO_RAW, REPO
from tests.helpers import free_port

DAGSTER = Path(sys.executable).with_name("dagster")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
GROUPS = ("raw", "conformed", "measures", "published", "indices")
AUTHORITIES = ["E06000001", "E06000017", "E06000053"]  # of the demo extracts
LOCATION = "indices"  # [tool.dagster] code_location_name in pyproject.toml
REPOSITORY = "__repository__"
SCREENSHOT = REPO / "docs" / "asset-graph.png"
RUN_TIMEOUT = 600  # seconds; the main job takes about a minute and a half here

# Runs `dagster dev` with the default handlers of the signals that stop it: a process started
# from a background job inherits SIGINT and SIGTERM ignored, and dagster dev would not stop.
WRAPPER = (
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)

# `make test` installs Debian's chromium; without it this test fails rather than skips.
assert Path(CHROMIUM).exists(), (
    f"no chromium at {CHROMIUM}: run make test, or apt-get install chromium"
)


def stop(process: subprocess.Popen) -> None:
    """Stop dagster dev and everything it started: its process group, gently, then not."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):  # the leader is gone; no child lingers
            os.killpg(process.pid, signal.SIGKILL)
        return


class UI:
    def __init__(self, url: str, raw: Path, publish: Path, log: Path) -> None:
        self.url, self.raw, self.publish, self.log = url, raw, publish, log

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def graphql(self, query: str, **variables) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            json.dumps({"query": query, "variables": variables}).encode(),
            {"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def launch(
        self, asset_selection: list[list[str]] | None = None, tags: dict[str, str] | None = None
    ) -> str:
        """Launch the main job (or a subset of its assets) as the UI's Materialize button does."""
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
        selector["jobName"] = "main"
        if asset_selection is not None:
            selector["assetSelection"] = [{"path": path} for path in asset_selection]
        metadata = {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        data = self.graphql(
            """mutation Launch($params: ExecutionParams!) {
                 launchRun(executionParams: $params) {
                   __typename
                   ... on LaunchRunSuccess { run { runId } }
                   ... on Error { message }
                 }
               }""",
            params={"selector": selector, "runConfigData": {}, "executionMetadata": metadata},
        )["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return data["run"]["runId"]

    def wait_for_run(self, run_id: str) -> str:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            status = self.graphql(
                "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                id=run_id,
            )["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(2)
        raise AssertionError(f"run {run_id} still not finished after {RUN_TIMEOUT} s")

    def authorities(self) -> list[str]:
        """The `authority` partitions, as the UI lists them for the persons asset."""
        node = self.graphql(
            """{ assetNodeOrError(assetKey: {path: ["measures", "persons"]}) {
                   ... on AssetNode { partitionKeysByDimension { partitionKeys } } } }"""
        )["assetNodeOrError"]
        return node["partitionKeysByDimension"][0]["partitionKeys"]

    def stale_status(self) -> dict[str, str]:
        nodes = self.graphql("{ assetNodes { assetKey { path } staleStatus } }")["assetNodes"]
        return {"/".join(n["assetKey"]["path"]): n["staleStatus"] for n in nodes}

    def sensor(self) -> dict:
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": "new_extracts",
        }
        return self.graphql(
            """query Sensor($selector: SensorSelector!) {
                 sensorOrError(sensorSelector: $selector) {
                   ... on Sensor {
                     minIntervalSeconds
                     sensorState {
                       id status
                       typeSpecificData { ... on SensorData { lastCursor } }
                       ticks(limit: 5) { status skipReason }
                     }
                   }
                 }
               }""",
            selector=selector,
        )["sensorOrError"]


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> UI:
    root = tmp_path_factory.mktemp("ui")
    home, raw = root / "dagster_home", root / "raw"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    shutil.copytree(DEMO_RAW, raw)
    settled = time.time() - 3600  # extracts that have been there a while
    for path in raw.rglob("*"):
        os.utime(path, (settled, settled))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "INDICES_RAW_DIR": str(raw),
        "INDICES_WAREHOUSE_DIR": str(root / "warehouse"),
        "INDICES_PUBLISH_DIR": str(root / "published"),
    }
    port = free_port()
    log = root / "dagster-dev.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(DAGSTER), "dev"]
            + ["--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )
    ui = UI(f"http://127.0.0.1:{port}", raw, root / "published", log)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"dagster dev exited:\n{ui.log_tail()}"
            assert time.monotonic() < deadline, f"no UI after 180 s:\n{ui.log_tail()}"
            try:
                with urllib.request.urlopen(f"{ui.url}/server_info", timeout=5):
                    pass
                repositories = ui.graphql(
                    "{ repositoriesOrError { ... on RepositoryConnection "
                    "{ nodes { name location { name } } } } }"
                )["repositoriesOrError"]["nodes"]
                if {(r["location"]["name"], r["name"]) for r in repositories} >= {
                    (LOCATION, REPOSITORY)
                }:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        yield ui
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def main_run(ui) -> str:
    """The main job launched through the UI once over every local authority, as the nightly
    schedule launches it: its status. The sensor's first tick makes the raw folder's
    authorities partitions."""
    deadline = time.monotonic() + 120
    while (authorities := ui.authorities()) != AUTHORITIES:
        assert time.monotonic() < deadline, f"partitions after 120 s: {authorities}"
        time.sleep(2)
    return ui.wait_for_run(ui.launch(tags=range_tags(authorities)))


def open_asset_graph(browser, ui: UI):
    """The global asset lineage page, every group collapsed to one box, navigation hidden."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{ui.url}/asset-groups", timeout=120_000)
    page.get_by_text("Materialize all").wait_for(timeout=120_000)
    for group in GROUPS:  # the group boxes of the graph (and the sidebar's tree)
        page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
    return page


def test_the_asset_graph_shows_every_group(ui, browser):
    page = open_asset_graph(browser, ui)
    lines = {line.strip() for line in page.inner_text("body").splitlines()}
    assert set(GROUPS) <= lines
    assert "Global asset lineage" in lines
    page.close()


def test_the_sensor_is_on_and_its_first_tick_only_records(ui):
    sensor = ui.sensor()
    assert sensor["minIntervalSeconds"] == 60
    assert sensor["sensorState"]["status"] == "RUNNING"  # on by default, as the schedule
    deadline = time.monotonic() + 120
    while not sensor["sensorState"]["ticks"]:
        assert time.monotonic() < deadline, "no sensor tick after 120 s"
        time.sleep(2)
        sensor = ui.sensor()
    first = sensor["sensorState"]["ticks"][-1]
    assert first["status"] == "SKIPPED" and first["skipReason"].startswith("first tick")


def test_a_run_launched_through_the_ui_publishes(ui, main_run, browser, tmp_path):
    assert main_run == "SUCCESS", ui.log_tail()
    assert (ui.publish / "frailty_lad" / "v000001" / "manifest.json").is_file()
    catalog = duckdb.connect(str(ui.publish / "catalog.duckdb"), read_only=True)
    assert catalog.execute("SELECT count(*) FROM frailty_lad").fetchone()[0] == 3
    assert catalog.execute("SELECT count(*) FROM releases").fetchone()[0] >= 9
    catalog.close()
    # The run observed the raw sources first, so nothing it made is stale.
    assert set(ui.stale_status().values()) == {"FRESH"}

    page = open_asset_graph(browser, ui)
    page.get_by_text("Hide navigation").click()
    page.get_by_text("6", exact=True).nth(1).wait_for()  # raw's and conformed's status counts
    sidebar = page.get_by_placeholder("Jump to…").bounding_box()
    carets = [  # the sidebar's group rows, expanded to list every asset with its status
        button
        for button in page.locator("button").all()
        if (box := button.bounding_box())
        and (box["width"], box["height"]) == (18, 16)
        and box["x"] < sidebar["x"] + sidebar["width"]
    ]
    for caret in reversed(carets):
        caret.click()
    lines = {line.strip() for line in page.inner_text("body").splitlines()}
    assert {"gp_events", "persons", "frailty_lad", "ingest_ledger", "frailty_index"} <= lines
    page.mouse.move(1, 999)
    page.wait_for_timeout(1000)
    shot = SCREENSHOT if os.environ.get("INDICES_REFRESH_SCREENSHOT") else tmp_path / "graph.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    page.close()


def test_a_new_extract_shows_what_is_stale_and_what_the_sensor_would_run(ui, main_run):
    """After the main run: a newer gp_events extract, observed through the UI, makes the
    conformed events stale (not the register); the sensor asks for a run of what depends on it."""
    assert main_run == "SUCCESS", ui.log_tail()
    state = ui.sensor()["sensorState"]
    stopped = ui.graphql(
        "mutation Stop($id: String!) { stopSensor(id: $id) { __typename "
        "... on StopSensorMutationResult { instigationState { status } } } }",
        id=state["id"],
    )["stopSensor"]
    assert stopped["instigationState"]["status"] == "STOPPED"  # the test, not the sensor, runs
    cursor = ui.sensor()["sensorState"]["typeSpecificData"]["lastCursor"]
    assert "gp_events/gp_events_2025-03-31.csv.gz" in json.loads(cursor)

    folder = ui.raw / "gp_events"
    shutil.copy2(folder / "gp_events_2025-03-31.csv.gz", folder / "gp_events_2025-04-30.csv.gz")
    assert ui.wait_for_run(ui.launch([["raw", "gp_events"]])) == "SUCCESS", ui.log_tail()
    stale = ui.stale_status()
    assert stale["conformed/gp_events"] == "STALE"
    assert stale["conformed/gp_patients"] == "FRESH"

    tick = ui.graphql(
        """mutation DryRun($selector: SensorSelector!, $cursor: String) {
             sensorDryRun(selectorData: $selector, cursor: $cursor) {
               __typename
               ... on DryRunInstigationTick {
                 evaluationResult {
                   skipReason error { message }
                   runRequests { runKey assetSelection { path } tags { key value } }
                 }
               }
             }
           }""",
        selector={
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": "new_extracts",
        },
        cursor=cursor,
    )["sensorDryRun"]["evaluationResult"]
    assert tick["error"] is None, tick["error"]
    (request,) = tick["runRequests"]
    selected = {"/".join(key["path"]) for key in request["assetSelection"]}
    assert {"raw/gp_events", "conformed/gp_events", "measures/persons"} <= selected
    assert {"published/frailty_lad", "indices/frailty_index"} <= selected
    assert not selected & {"conformed/gp_patients", "raw/gp_patients", "indices/imd2019"}
    assert {"key": "indices/changed_sources", "value": "gp_events"} in request["tags"]


def test_a_backfill_fans_out_one_run_per_authority_then_the_national_counts(ui, main_run):
    """The UI's Materialize over every partition: the daemon runs each authority's person-level
    work in its own run, and the national counts once, after all of them."""
    assert main_run == "SUCCESS", ui.log_tail()
    # A newer events extract may have landed (the sensor's test): the parts refuse conformed
    # tables made from other extracts than their run reads, so the events are conformed first.
    assert ui.wait_for_run(ui.launch([["conformed", "gp_events"]])) == "SUCCESS", ui.log_tail()
    selection = [
        ["conformed", "asc_cld"],
        ["measures", "long_term_support"],
        ["measures", "persons"],
        ["measures", "persons_unlocated"],
        ["measures", "area_counts"],
    ]
    launched = ui.graphql(
        """mutation Backfill($params: LaunchBackfillParams!) {
             launchPartitionBackfill(backfillParams: $params) {
               __typename
               ... on LaunchBackfillSuccess { backfillId }
               ... on Error { message }
             }
           }""",
        params={"assetSelection": [{"path": p} for p in selection], "allPartitions": True},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        backfill = ui.graphql(
            """query Backfill($id: String!) {
                 partitionBackfillOrError(backfillId: $id) {
                   ... on PartitionBackfill {
                     status
                     runs { status startTime endTime tags { key value }
                            assetSelection { path } }
                   }
                 }
               }""",
            id=launched["backfillId"],
        )["partitionBackfillOrError"]
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        assert time.monotonic() < deadline, f"backfill not done after {RUN_TIMEOUT} s"
        time.sleep(3)
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), ui.log_tail()
    runs = backfill["runs"]
    assert {r["status"] for r in runs} == {"SUCCESS"}
    partition_runs = {
        tag["value"]: run
        for run in runs
        for tag in run["tags"]
        if tag["key"] == "dagster/partition"
    }
    assert sorted(partition_runs) == AUTHORITIES  # one run per authority
    # Launched without them, each run's first step decided its inputs and recorded them.
    for run in runs:
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        assert tags["indices/reference_date"] == "2025-03-31" and tags["indices/inputs"]
    (national,) = [
        run
        for run in runs
        if ["measures", "area_counts"] in [key["path"] for key in run["assetSelection"]]
    ]
    assert national["startTime"] >= max(run["endTime"] for run in partition_runs.values())
