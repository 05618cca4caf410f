"""Resources shared by every domain, built from settings when the code location loads."""


import dagster as dg
import psycopg

from cdr_platform.lib.settings import WarehouseSettings, load_settings
from cdr_platform.lib.warehouse import connect


class KafkaResource(dg.ConfigurableResource):
    """Where the CDR topics live."""

    bootstrap_servers: str
    raw_cdrs_topic: str
    error_cdrs_topic: str


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (PostgreSQL locally; SQL Server in production through dbt and JDBC)."""

    host: str
    port: int
    database: str
    user: str
    password: str = ""

    @property
    def settings(self) -> WarehouseSettings:
        return WarehouseSettings(self.host, self.port, self.database, self.user, self.password)

    def connect(self) -> psycopg.Connection:
        return connect(self.settings)


@dg.definitions
def resources() -> dg.Definitions:
    s = load_settings()
    return dg.Definitions(resources={
        "kafka": KafkaResource(
            bootstrap_servers=s.kafka.bootstrap_servers,
            raw_cdrs_topic=s.kafka.raw_cdrs_topic,
            error_cdrs_topic=s.kafka.error_cdrs_topic,
        ),
        "warehouse": WarehouseResource(
            host=s.warehouse.host,
            port=s.warehouse.port,
            database=s.warehouse.database,
            user=s.warehouse.user,
            # the secret stays in the environment, never in the run config or the UI
            password=dg.EnvVar("CDR_WAREHOUSE_PASSWORD") if s.warehouse.password else "",
        ),
    })


@dg.definitions
def pipes_resources() -> dg.Definitions:
    # Spark drivers run as subprocesses that speak Dagster Pipes.
    return dg.Definitions(resources={"pipes_subprocess_client": dg.PipesSubprocessClient()})
