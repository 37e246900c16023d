"""Step Planner: plan first (shown as steps), then stream the answer.

lollms_server's own script contract: ``run_workflow(prompt, params, context)`` may return
text, media, or an async iterator; ``context`` streams progress and reaches the server's
bindings and functions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


async def run_workflow(prompt: str, params: dict[str, Any], context: Any) -> AsyncIterator[str]:
    max_steps = int(params.get("max_steps", 3))
    await context.step_start("Planning")
    plan = await context.generate(
        f"List at most {max_steps} short steps to do this task, one per line:\n{prompt}",
        max_tokens=int(params.get("plan_tokens", 96)),
    )
    steps = [line.strip(" -*0123456789.") for line in plan.splitlines() if line.strip()]
    await context.step_end(f"Planned {len(steps[:max_steps])} step(s)")
    for step in steps[:max_steps]:
        await context.step(step)
    if "calculate" in context.functions and params.get("expression"):
        value = await context.call_function("calculate", expression=params["expression"])
        await context.info(f"calculate({params['expression']}) = {value}")

    async def answer() -> AsyncIterator[str]:
        async for piece in context.stream_text(
            f"Task: {prompt}\nPlan:\n{plan}\nNow carry out the plan and give the result.",
            max_tokens=int(params.get("answer_tokens", 256)),
        ):
            yield piece

    return answer()
