"""Dask preload: every worker holds one pooled engine for the results database.

Use it as::

    dask worker tcp://scheduler:8786 --preload simmate_k8s.preload
    LocalCluster(preload=["simmate_k8s.preload"])          # every worker process
    distributed.client.preload: [simmate_k8s.preload]      # dask config: a Client registers
                                                           # the plugin on all its workers

The worker reads its settings when it starts, connects (a real round trip, retried with backoff
for ``SIMMATE_DB_CONNECT_TIMEOUT`` seconds; a refused login fails at once), brings an empty
database to the current schema, and only then registers with the scheduler; if the database
cannot be used the worker does not start. Tasks get the engine from :func:`results_engine`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading

from distributed import WorkerPlugin

from simmate_k8s import database
from simmate_k8s.results import open_results_database
from simmate_k8s.settings import Settings

PLUGIN_NAME = "simmate-results-db"
# under "distributed" so the lines use the handlers and format dask configures on workers
logger = logging.getLogger("distributed.simmate_k8s")

_process = {}  # outside Dask: one engine and settings per process
_process_lock = threading.Lock()


class ResultsDatabasePlugin(WorkerPlugin):
    """Opens the pooled engine on worker start, disposes of it on teardown."""

    name = PLUGIN_NAME

    def __init__(self, settings: Settings | None = None):
        self.settings = settings
        self.engine = None

    async def setup(self, worker):
        prefect_logs_to_stderr()
        self.settings = self.settings or Settings.from_env()
        self.engine, version = await asyncio.to_thread(open_results_database, self.settings)
        logger.info("results database %s ready (%s)", database.redact(self.engine.url), version)

    def teardown(self, worker):
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


async def dask_setup(server):
    from distributed import Client

    if isinstance(server, Client):
        await server.register_plugin(ResultsDatabasePlugin(), name=PLUGIN_NAME)
        return
    try:
        await server.plugin_add(ResultsDatabasePlugin(), name=PLUGIN_NAME, catch_errors=False)
    except Exception as error:
        # distributed only logs exceptions raised by preloads and would start the worker anyway:
        # a worker that cannot save results must not take tasks, so stop the process here.
        logger.critical("simmate_k8s.preload: worker not started: %s", error)
        raise SystemExit(3) from None


def prefect_logs_to_stderr() -> None:
    """Prefect 1 logs to stdout; a worker's (and the CLI's) stdout is for data (e.g. --json)."""
    import sys

    import prefect  # noqa: F401  (its import sets up the handler to move)

    for handler in logging.getLogger("prefect").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def _plugin():
    try:
        from distributed import get_worker

        worker = get_worker()
    except ValueError:  # not running inside a Dask worker
        return None
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.engine is None:
        raise RuntimeError(
            f"Dask worker {worker.name} has no results-database connection: "
            "start workers with --preload simmate_k8s.preload")
    return plugin


def results_engine():
    """The engine tasks must use: the worker's preloaded one, or one per process outside Dask."""
    plugin = _plugin()
    return plugin.engine if plugin is not None else _process_state()["engine"]


def worker_settings() -> Settings:
    plugin = _plugin()
    return plugin.settings if plugin is not None else _process_state()["settings"]


def _process_state() -> dict:
    with _process_lock:
        if not _process:
            settings = Settings.from_env()
            _process["settings"] = settings
            _process["engine"] = open_results_database(settings)[0]
        return _process


@functools.cache
def provenance() -> dict:
    """What computed a result: package versions, Python, and the image when in a container."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    info = {"python": platform.python_version()}
    for package in ("simmate-k8s", "ase", "prefect", "distributed", "numpy"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    image = worker_settings().image
    if image:
        info["image"] = image
    return info
