"""``n`` > 1 on ``/v1/chat/completions`` and ``/v1/completions``: one generation per choice,
run concurrently through the scheduler (as many at once as the model has slots), shown as
one answer whose choices are indexed 0..n-1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from fastapi import Request

from lollms_server.api.disconnect import cancel_on_disconnect
from lollms_server.api.kit.encode import Encoder, Record, encode
from lollms_server.generation.fold import CollectedOutput
from lollms_server.generation.service import (
    GenerationRequest,
    GenerationRun,
    GenerationService,
    Run,
    collect,
)

__all__ = ["MergedChoices", "collect_choices"]

T = TypeVar("T")


async def _all(work: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Every result, or the first failure with the rest cancelled (their leases released)."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def collect_choices(
    request: Request, service: GenerationService, bodies: list[GenerationRequest]
) -> tuple[Run, list[CollectedOutput]]:
    """``(first run, outputs in choice order)``: each choice started and collected on its
    own (a choice waiting for a slot never holds up one that has it); all stopped if the
    client leaves."""
    runs: dict[int, Run] = {}

    async def one(index: int, body: GenerationRequest) -> CollectedOutput:
        runs[index] = run = await service.start(body)
        if isinstance(run, GenerationRun):  # not started yet: its binding may skip streaming
            run.request = replace(run.request, stream=False)
        try:
            return await collect(run.__aiter__())
        finally:
            await run.aclose()

    outs = await cancel_on_disconnect(
        request, _all([one(i, body) for i, body in enumerate(bodies)])
    )
    return runs[0], outs


_DONE = object()


class MergedChoices:
    """The streams of several choices as one: choice 0 is started before the response (an
    immediate refusal is then an HTTP error), the others in their own tasks, so that each
    streams as soon as it has a slot. A failing choice ends the whole stream."""

    def __init__(
        self,
        service: GenerationService,
        first: Run,
        rest: list[GenerationRequest],
        encoder: Callable[[int], Encoder],
        closing: Callable[[list[CollectedOutput]], list[Record]],
    ) -> None:
        self.service = service
        self.runs: list[Run] = [first]
        self.rest = rest
        self.encoders = [encoder(i) for i in range(len(rest) + 1)]
        self.closing = closing  # records after every choice ended (the summed usage)
        self.tasks: list[asyncio.Task[None]] = []

    async def records(self) -> AsyncIterator[Record]:
        """Every choice's records as they come, then the closing records."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=8 * len(self.encoders))
        self.tasks = [asyncio.create_task(self._pump(i, queue)) for i in range(len(self.encoders))]
        try:
            left = len(self.tasks)
            while left:
                item = await queue.get()
                if item is _DONE:
                    left -= 1
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield item
        finally:
            await self._stop()
        for record in self.closing([e.fold.result() for e in self.encoders]):
            yield record

    async def _pump(self, index: int, queue: asyncio.Queue[Any]) -> None:
        try:
            run = self.runs[0] if index == 0 else await self._start(index)
            async for record in encode(run, self.encoders[index]):
                await queue.put(record)
            await queue.put(_DONE)
        except Exception as exc:  # shown by records(); cancellation is not caught
            await queue.put(exc)

    async def _start(self, index: int) -> Run:
        run = await self.service.start(self.rest[index - 1])
        self.runs.append(run)
        return run

    async def _stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop every choice and release its lease."""
        await self._stop()
        for run in self.runs:
            await run.aclose()
