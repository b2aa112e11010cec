"""Dask preload: every worker holds one pooled engine for the results database.

Use it as::

    dask worker tcp://scheduler:8786 --preload simmate_k8s.preload
    LocalCluster(preload=["simmate_k8s.preload"])          # every worker process
    distributed.client.preload: [simmate_k8s.preload]      # dask config: a Client registers
                                                           # the plugin on all its workers

The worker connects (with a real round trip, retrying with backoff for
``SIMMATE_DB_CONNECT_TIMEOUT`` seconds) before it registers with the scheduler; if the database
cannot be reached the worker does not start. Tasks get the engine from :func:`results_engine`.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from distributed import WorkerPlugin

from simmate_k8s import database

PLUGIN_NAME = "simmate-results-db"
# under "distributed" so the lines use the handlers and format dask configures on workers
logger = logging.getLogger("distributed.simmate_k8s")

_process_engine = None
_process_engine_lock = threading.Lock()


class ResultsDatabasePlugin(WorkerPlugin):
    """Opens the pooled engine on worker start, disposes of it on teardown."""

    name = PLUGIN_NAME

    def __init__(self, url: str | None = None, timeout: float | None = None):
        self.url = url or database.configured_url()
        self.timeout = timeout
        self.engine = None

    async def setup(self, worker):
        timeout = self.timeout or database.connect_timeout()
        self.engine = database.create_engine(self.url)
        version = await asyncio.to_thread(database.connect_with_retry, self.engine, timeout)
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


def results_engine():
    """The engine tasks must use: the worker's preloaded one, or one per process outside Dask."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except ValueError:  # not running inside a Dask worker
        return _shared_process_engine()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.engine is None:
        raise RuntimeError(
            f"Dask worker {worker.name} has no results-database connection: "
            "start workers with --preload simmate_k8s.preload"
        )
    return plugin.engine


def _shared_process_engine():
    global _process_engine
    with _process_engine_lock:
        if _process_engine is None:
            engine = database.create_engine()
            database.connect_with_retry(engine, database.connect_timeout())
            _process_engine = engine
        return _process_engine
