"""State hooks shared by the flows.

When a flow-run process dies (SIGKILL, out of memory), Prefect's runner marks that flow run Crashed, but its subflow
runs and task runs, which ran in the same process, stay Running forever. `crash_subflows` (an `on_crashed` hook, run
by the runner that saw the process die) marks every unfinished subflow run and task run below it Crashed too.
"""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

FINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]


async def crash_subflows(flow: Any, flow_run: Any, state: Any) -> None:
    message = f"its parent flow run {flow_run.name!r} ({flow_run.id}) crashed: {state.message or state.name}"
    async with get_client() as client:
        run_ids, frontier = [flow_run.id], [flow_run.id]
        while frontier:  # subflows of subflows too
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier))
            )
            frontier = [child.id for child in children]
            run_ids += frontier
            for child in children:
                if child.state is None or child.state.type not in FINAL:
                    await client.set_flow_run_state(child.id, Crashed(message=message), force=True)
        unfinished = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
            task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(not_any_=FINAL))),
        )
        for task_run in unfinished:
            await client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
