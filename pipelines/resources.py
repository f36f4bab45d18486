"""The one resource: where a run reads and writes."""

import dagster as dg

from indices.settings import Settings


class IndicesSettings(dg.ConfigurableResource):
    """Raw, warehouse and publish folders and the reference date. Blank means: the
    `INDICES_*_DIR` environment variable, else the default under `data/`; a blank reference date
    means the newest gp_patients extract date."""

    raw_dir: str = ""
    warehouse_dir: str = ""
    publish_dir: str = ""
    reference_date: str = ""

    def resolve(self) -> Settings:
        return Settings.resolve(
            self.raw_dir, self.warehouse_dir, self.publish_dir, self.reference_date or None
        )
