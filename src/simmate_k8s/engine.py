"""Running batches here: each batch is one Prefect flow run on Dask, either on an existing
scheduler or on a local cluster whose workers load the preload.

The tasks run on Dask workers exactly as they do in the cluster; only who started the
scheduler differs. The caller's thread follows progress in the results database and can cancel.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator

from prefect.executors import DaskExecutor

from simmate_k8s.errors import SettingsError, SimmateError
from simmate_k8s.flows import library
from simmate_k8s.flows.inputs import BatchRun

PRELOAD = library.PRELOAD
CHUNKS_PER_WORKER = 50  # few enough that Prefect's ~10 ms per task is small next to the work


class SchedulerError(SimmateError):
    """No usable Dask scheduler."""


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[object]:
    """A LocalCluster of ``workers`` single-threaded processes that load the preload."""
    import warnings

    from distributed import LocalCluster

    # Prefect's DaskExecutor re-adds its scheduler plugin for every flow run; that is expected.
    warnings.filterwarnings("ignore", message="Scheduler already contains a plugin")
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, preload=[PRELOAD],
        dashboard_address=os.environ.get("SIMMATE_DASHBOARD_ADDRESS", ":0"),
    ) as cluster:
        yield cluster


def security(address: str, settings):
    """The distributed Security for a tls:// ``address`` (encryption required, this client's
    certificate from the settings' files), None for any other address. SettingsError, one
    line, when a file is not set or cannot be read."""
    from simmate_k8s.settings import DASK_TLS_CA_FILE, DASK_TLS_CERT, DASK_TLS_KEY

    if not address.startswith("tls://"):
        return None
    files = {DASK_TLS_CA_FILE: settings.dask_tls_ca_file, DASK_TLS_CERT: settings.dask_tls_cert,
             DASK_TLS_KEY: settings.dask_tls_key}
    missing = [name for name, path in files.items() if not path]
    if missing:
        raise SettingsError(
            f"{address} needs TLS certificates: set {', '.join(missing)} (the CA, a client "
            "certificate and its key; `helm status <release>` names the release's Secret)")
    for name, path in files.items():
        try:
            with open(path, "rb"):
                pass
        except OSError as error:
            raise SettingsError(f"{name}={path}: cannot read it ({error.strerror or error})"
                                ) from None
    from distributed.security import Security

    return Security(require_encryption=True, tls_ca_file=files[DASK_TLS_CA_FILE],
                    tls_client_cert=files[DASK_TLS_CERT], tls_client_key=files[DASK_TLS_KEY])


def connect(address: str, timeout: float = 10, *, security=None):
    """A Client of the scheduler at ``address``; SchedulerError if none answers. A tls://
    address needs ``security`` (see :func:`security`)."""
    import ssl

    from distributed import Client

    if "://" not in address:
        raise SchedulerError(f"--address {address!r}: expected tcp://HOST:PORT or tls://HOST:PORT")
    if address.startswith("tls://") and security is None:
        raise SchedulerError(f"{address}: a tls:// scheduler needs TLS certificates")
    try:
        return Client(address, timeout=timeout, security=security)
    except ssl.SSLError as error:  # a certificate of another CA, or a key that does not match
        raise SchedulerError(f"TLS with the Dask scheduler at {address} failed: "
                             f"{error.reason or error}") from None
    except RuntimeError as error:  # "encryption required by Dask configuration" for tcp://
        raise SchedulerError(f"{address}: {_first_line(error)}") from None
    except (OSError, TimeoutError) as error:
        raise SchedulerError(
            f"no Dask scheduler answers at {address} within {timeout:g} s "
            f"({error.__class__.__name__}); check the address, or leave out --address "
            "to start a local cluster") from None


def _workers_database(dask_worker) -> str | None:
    from simmate_k8s import database, preload

    plugin = dask_worker.plugins.get(preload.PLUGIN_NAME)
    engine = getattr(plugin, "engine", None)
    return None if engine is None else database.redact(engine.url)


def check_workers(client, url) -> int:
    """The number of workers, once each is known to save to the database at ``url`` (the one
    this process reads back); SchedulerError otherwise."""
    from simmate_k8s import database

    seen = client.run(_workers_database)
    expected = database.redact(url)
    for address, theirs in seen.items():
        if theirs is None:
            raise SchedulerError(f"worker {address} has no results database; start workers "
                                 "with --preload simmate_k8s.preload")
        if theirs != expected:
            raise SchedulerError(f"the workers save to {theirs} but this command reads "
                                 f"{expected}; set SIMMATE_DATABASE_URL to the workers' "
                                 "database")
    return len(seen)


def chunk_size(items: int, workers: int) -> int:
    """Items per Prefect task: one each unless there are many more items than workers."""
    return max(1, items // (CHUNKS_PER_WORKER * max(1, workers)))


def run_flow(run: BatchRun, client, *, rerun: bool, chunk: int) -> BatchRun:
    """One batch as one Prefect flow run on ``client``'s cluster."""
    batch = run.batch
    parameters = {**batch.parameters, "batch_id": run.batch_id, "rerun": rerun,
                  "chunk_size": chunk}
    parameters["inputs"] = batch.inputs()
    flow = library.FLOWS[batch.workflow.name]
    run.state = flow.run(
        parameters=parameters, executor=SharedClientDaskExecutor(client),
        context={"flow_run_id": run.flow_run_id, "flow_run_name": run.batch_id})
    task_states = run.state.result if isinstance(run.state.result, dict) else {}
    for task, state in task_states.items():
        if task.name == "summary" and isinstance(state.result, dict):
            continue  # the batch's outcome: reported from the results database
        if state.is_failed() and not run.error:
            run.error = _first_line(state.message)
    return run


class Cancelled(Exception):
    """Ctrl-C: the batch was stopped; what finished is saved."""


def run_batches(runs: list[BatchRun], client, *, rerun: bool, chunk: int,
                on_poll: Callable[[], None] = lambda: None, poll: float = 0.5) -> list[BatchRun]:
    """Run the flow runs concurrently in background threads; this thread calls ``on_poll``
    every ``poll`` seconds (progress) and is the one a Ctrl-C interrupts."""
    from simmate_k8s.preload import prefect_logs_to_stderr

    prefect_logs_to_stderr()
    errors: list[BaseException] = []

    def target(run):
        try:
            run_flow(run, client, rerun=rerun, chunk=chunk)
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=target, args=(run,), daemon=True, name=run.batch_id)
               for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(poll)
            on_poll()
    on_poll()
    if errors:
        raise errors[0]
    return runs


def stop_quietly(client, cluster) -> None:
    """Release every pending task and stop local workers at once, without the tracebacks that
    the flow threads and Dask's comms print while their connections close under them.

    Local worker processes are killed rather than asked to finish: what they completed is
    already saved, and a half-done item is simply computed again on resume.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt this
    logging.disable(logging.CRITICAL)
    threading.excepthook = lambda args: None
    if cluster is not None and hasattr(cluster, "simmate"):  # batch-system jobs: cancel them
        with contextlib.suppress(Exception):
            cluster.close(timeout=3)
    elif cluster is not None:
        for nanny in list(getattr(cluster, "workers", {}).values()):
            pid = getattr(getattr(getattr(nanny, "process", None), "process", None), "pid", None)
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        client.close(timeout=1)


class SharedClientDaskExecutor(DaskExecutor):
    """A Prefect DaskExecutor on a Client that every flow run here shares.

    Prefect's DaskExecutor opens a Client per flow run and a distributed Event that every task
    checks on the scheduler before it runs (flow-run cancellation); a run here is cancelled by
    closing this process's client, which releases its pending tasks, so neither is needed.

    Prefect also sends its whole config (~5 kB pickled, ~400 objects that Dask's task spec walks)
    inside every task's context. Every worker loads Prefect's config itself when it imports
    Prefect, and a run here has no backend (the plain TaskRunner talks to no API), so nothing a
    task does needs the client's copy: leaving it out cut the cost per mapped task about
    three-fold (300 trivial mapped tasks: 8.6 s -> 3.0 s on a loaded 2-core machine).
    Flow runs started by the agent in the cluster use Prefect's own DaskExecutor, config and all.
    """

    def __init__(self, client):
        super().__init__(address=client.scheduler.address, watch_worker_status=False,
                         disable_cancellation_event=True)
        self.shared_client = client

    @contextlib.contextmanager
    def start(self) -> Iterator[None]:
        self.client = self.shared_client
        try:
            yield
        finally:
            self.client = None

    def submit(self, fn, *args, extra_context=None, **kwargs):
        context = kwargs.get("context")
        if isinstance(context, dict) and "config" in context:
            kwargs["context"] = {key: value for key, value in context.items() if key != "config"}
        return super().submit(fn, *args, extra_context=extra_context, **kwargs)


def _first_line(value) -> str:
    text = str(value or "").strip()
    return text.splitlines()[0] if text else ""
