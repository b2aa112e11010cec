"""Running flow runs: on an existing Dask scheduler, or on a local cluster with the preload.

The tasks run on Dask workers exactly as they do in the cluster; only who started the
scheduler differs.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from prefect.executors import DaskExecutor

from simmate_k8s.flows.library import Workflow  # imports prefect anyway

PRELOAD = "simmate_k8s.preload"


@dataclass
class RunOutcome:
    label: str
    flow_run_id: str
    succeeded: bool
    message: str
    results: list[dict] = field(default_factory=list)  # compute records of the run's tasks


@contextlib.contextmanager
def dask_scheduler(workers: int, address: str | None = None) -> Iterator[str]:
    """Yield a scheduler address: the given one, or a local cluster started with the preload."""
    if address:
        yield address
        return
    import warnings

    from distributed import LocalCluster

    # Prefect's DaskExecutor re-adds its scheduler plugin for every flow run; that is expected.
    warnings.filterwarnings("ignore", message="Scheduler already contains a plugin")
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        preload=[PRELOAD],
        dashboard_address=os.environ.get("SIMMATE_DASHBOARD_ADDRESS", ":0"),
    ) as cluster:
        yield cluster.scheduler_address


def check_scheduler(address: str, timeout: float = 10) -> None:
    """UserError unless a Dask scheduler answers at ``address``."""
    from distributed import Client

    from simmate_k8s.errors import UserError

    if "://" not in address:
        raise UserError(f"--address {address!r}: expected tcp://HOST:PORT")
    try:
        with Client(address, timeout=timeout):
            pass
    except (OSError, TimeoutError) as error:
        raise UserError(
            f"no Dask scheduler answers at {address} within {timeout:g} s "
            f"({error.__class__.__name__}); check the address, or leave out --address "
            "to start a local cluster"
        ) from None


def run_flow(workflow: Workflow, label: str, parameters: dict, client) -> RunOutcome:
    """One Prefect flow run on the batch's Dask ``client``."""
    flow_run_id = str(uuid.uuid4())
    state = workflow.flow.run(
        parameters=parameters,
        executor=SharedClientDaskExecutor(client),
        context={"flow_run_id": flow_run_id, "flow_run_name": label},
    )
    task_states = state.result if isinstance(state.result, dict) else {}
    records = []
    failures = []
    for task, task_state in task_states.items():
        children = task_state.map_states if task_state.is_mapped() else [task_state]
        for child in children:
            if child.is_failed():
                failures.append(f"{task.name}: {_first_line(child.message or child.result)}")
            elif isinstance(child.result, dict) and "step" in child.result:
                records.append(child.result)
    message = failures[0] if failures else _first_line(state.message)
    return RunOutcome(label, flow_run_id, state.is_successful(), message, records)


def run_batch(
    workflow: Workflow,
    runs: list[tuple[str, dict]],
    address: str,
    concurrency: int,
    on_done: Callable[[RunOutcome], None] = lambda outcome: None,
) -> list[RunOutcome]:
    """Run many flow runs at once so the workers stay busy; outcomes in input order."""
    from distributed import Client

    outcomes: dict[int, RunOutcome] = {}
    with Client(address) as client, \
            ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(runs)))) as pool:
        futures = {
            pool.submit(run_flow, workflow, label, parameters, client): index
            for index, (label, parameters) in enumerate(runs)
        }
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[futures[future]] = outcome
            on_done(outcome)
    return [outcomes[index] for index in range(len(runs))]


class SharedClientDaskExecutor(DaskExecutor):
    """A Prefect DaskExecutor on a Client that every flow run of a batch shares.

    Prefect's DaskExecutor opens a Client per flow run (connect, handshake, a worker-status
    subscription) and a distributed Event that every task checks on the scheduler before it
    runs (flow-run cancellation). With one flow run per input that was ~8 ms of CPU per flow
    run in this process, which also hosts the local scheduler and shares the cores with the
    workers (docs/benchmarks.md). A batch is cancelled by ending this process, which closes the
    client and so releases its pending tasks: the Event is not needed here.
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


def _first_line(value) -> str:
    text = str(value or "").strip()
    return text.splitlines()[0] if text else ""
