"""The one resource: where a run reads and writes, and what it reads."""

import dagster as dg
from pydantic import PrivateAttr

from indices.core.settings import Settings
from indices.sources import inputs as run_inputs


class IndicesSettings(dg.ConfigurableResource):
    """Raw, warehouse and publish folders and the reference date. Blank means: the
    `INDICES_*_DIR` environment variable, else the default under `data/`; a blank reference date
    means the extract date of the register in force when the run starts.

    Within a run, `resolve()` also gives the run's inputs (`indices.sources.inputs`): those its
    launcher recorded in the run's tags, or, for a run started without them (from the UI), those
    the first step decided, which it records on the run. Every step of a run reads the same
    extracts at the same reference date, whatever arrives in the raw folder meanwhile."""

    raw_dir: str = ""
    warehouse_dir: str = ""
    publish_dir: str = ""
    reference_date: str = ""
    _run: dg.DagsterRun | None = PrivateAttr(default=None)
    _instance: dg.DagsterInstance | None = PrivateAttr(default=None)
    _resolved: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run = context.run
        self._instance = context.instance

    def folders(self) -> Settings:
        """The folders and any fixed reference date, without deciding the run's inputs (for
        sensors and schedules, and to look at the raw folder as it is now)."""
        return Settings.resolve(
            self.raw_dir, self.warehouse_dir, self.publish_dir, self.reference_date or None
        )

    def resolve(self) -> Settings:
        """The settings of this run, its inputs decided (outside a run: the folders only)."""
        if self._run is None:
            return self.folders()
        if self._resolved is None:
            settings = self.folders()
            self._resolved = settings.with_inputs(self._run_inputs(settings))
        return self._resolved

    def _run_inputs(self, settings: Settings) -> run_inputs.RunInputs:
        digest = self._run.tags.get(run_inputs.INPUTS_TAG)
        if digest:
            return run_inputs.load(settings.warehouse_dir, digest)
        inputs, decided = run_inputs.claim(
            settings.warehouse_dir,
            self._run.run_id,
            lambda: run_inputs.decide_inputs(settings),
        )
        if decided and self._instance is not None:
            self._instance.add_run_tags(self._run.run_id, inputs.tags())
        return inputs
