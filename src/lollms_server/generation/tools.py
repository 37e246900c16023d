"""The tool-calling loop: the model calls server functions until it can answer.

Bindings with native tool calling get the functions as OpenAI-shape ``tools``. Others get a
prompt protocol: the model answers with one JSON object, ``{"tool": name, "arguments": {...}}``
or ``{"tool": "none"}`` (constrained by a JSON schema where the binding can constrain
output), the server calls the function, and the final answer is a plain streamed generation
that sees the results. Arguments are validated against the function's schema first; invalid
ones go back to the model as an error, never to the function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import Event, TextDelta, ToolCall, ToolResult
from lollms_server.bindings.types import Message
from lollms_server.functions.model import FunctionDef
from lollms_server.functions.registry import CallResult, FunctionRegistry
from lollms_server.generation.workflow import Emit

__all__ = ["ToolLoop", "decision_schema", "parse_decision", "tool_instructions"]

RunEvents = Callable[[Any], AsyncGenerator[Event, None]]  # GenerationRequest -> its events
_TAGGED = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def tool_instructions(functions: Sequence[FunctionDef], required: bool) -> str:
    lines = ["You can call functions to get information or act. Available functions:"]
    for f in functions:
        lines.append(
            f"- {f.name}: {f.description or '(no description)'}\n"
            f"  arguments (JSON schema): {json.dumps(f.parameters)}"
        )
    lines.append(
        'Reply with only one JSON object: {"tool": "<function name>", "arguments": '
        "{...}} to call a function"
        + ("." if required else ', or {"tool": "none"} when no call is needed.')
    )
    return "\n".join(lines)


def _rebase(node: Any, prefix: str) -> Any:
    """``node`` with its ``#/$defs/X`` references renamed ``#/$defs/{prefix}X``."""
    if isinstance(node, dict):
        return {
            k: (
                f"#/$defs/{prefix}{v[len('#/$defs/') :]}"
                if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                else _rebase(v, prefix)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v, prefix) for v in node]
    return node


def decision_schema(functions: Sequence[FunctionDef], required: bool) -> dict[str, Any]:
    """One JSON object: a call of one of ``functions`` (or "none"). Each function's nested
    models (``$defs``) move to the root, renamed per function, so references resolve."""
    options: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    for f in functions:
        prefix = f"{f.name}__"
        parameters = _rebase({k: v for k, v in f.parameters.items() if k != "$defs"}, prefix)
        for name, definition in f.parameters.get("$defs", {}).items():
            defs[prefix + name] = _rebase(definition, prefix)
        options.append(
            {
                "type": "object",
                "properties": {"tool": {"const": f.name}, "arguments": parameters},
                "required": ["tool", "arguments"],
            }
        )
    if not required:
        options.append(
            {"type": "object", "properties": {"tool": {"const": "none"}}, "required": ["tool"]}
        )
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    return {**schema, "$defs": defs} if defs else schema


def parse_decision(text: str) -> tuple[str, dict[str, Any]] | None | str:
    """``(name, arguments)`` for a call, ``None`` for "no call", or the text itself when the
    model answered in prose instead of JSON."""
    tagged = _TAGGED.search(text)
    candidate = tagged.group(1) if tagged else text
    start = candidate.find("{")
    if start < 0:
        return text
    try:
        data, _ = json.JSONDecoder().raw_decode(candidate[start:])
    except json.JSONDecodeError:
        return text
    if not isinstance(data, dict):
        return text
    name = data.get("tool") or data.get("name") or data.get("function")
    if not name or name == "none":
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            arguments = {"_raw": arguments}
    return str(name), arguments if isinstance(arguments, dict) else {"_value": arguments}


DECISION_TOKENS = 512


def _looks_like_json(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith(("{", "<tool_call>", "```")) or '"tool"' in stripped


@dataclasses.dataclass
class ToolLoop:
    """One request's loop. ``run_events`` starts a plain generation and yields its events."""

    request: Any  # GenerationRequest (not imported: the service imports this module)
    binding: Binding
    functions: Sequence[FunctionDef]
    registry: FunctionRegistry
    max_rounds: int
    run_events: RunEvents

    async def __call__(self, emit: Emit) -> None:
        if self.binding.capabilities.tools:
            await self._native(emit)
        else:
            await self._prompted(emit)

    async def _call(self, emit: Emit, call: ToolCall) -> str:
        await emit(call)
        allowed = [f.name for f in self.functions]
        if call.name in allowed:
            result = await self.registry.call(call.name, call.arguments)
        else:  # only what the request enabled, whatever the model asks for
            result = CallResult(
                call.name, error=f"unknown function '{call.name}'; available: {', '.join(allowed)}"
            )
        await emit(ToolResult(call.id, call.name, result.as_text(), result.ok))
        return result.as_text()

    async def _native(self, emit: Emit) -> None:
        messages = list(self.request.messages)
        tools = tuple(f.tool() for f in self.functions)
        choice = self.request.tool_choice
        for round_ in range(self.max_rounds + 1):
            last = round_ == self.max_rounds  # out of rounds: answer without tools
            step = dataclasses.replace(
                self.request,
                messages=tuple(messages),
                functions=(),
                tools=() if last else tools,
                tool_choice=None if last else choice,
            )
            calls: list[ToolCall] = []
            text: list[str] = []
            async with contextlib.aclosing(self.run_events(step)) as events:
                async for event in events:
                    if isinstance(event, ToolCall):
                        calls.append(event)
                        continue
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    await emit(event)
            if not calls:
                return
            messages.append(
                Message(
                    "assistant",
                    "".join(text),
                    tool_calls=tuple(
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in calls
                    ),
                )
            )
            for call in calls:
                messages.append(Message("tool", await self._call(emit, call), tool_call_id=call.id))
            choice = "auto" if choice == "required" else choice

    async def _decide(self, emit: Emit, messages: list[Message], required: bool) -> str:
        system = tool_instructions(self.functions, required)
        first = messages[0] if messages and messages[0].role == "system" else None
        convo = messages[1:] if first else messages
        merged = f"{first.content}\n\n{system}" if first and first.content else system
        schema = None
        if self.binding.capabilities.structured_output:
            schema = decision_schema(self.functions, required)
        # The decision has its own budget: the client's max_tokens is for the answer.
        params = dataclasses.replace(self.request.params, max_tokens=DECISION_TOKENS, stop=())
        step = dataclasses.replace(
            self.request,
            messages=(Message("system", merged), *convo),
            functions=(),
            params=params,
            json_schema=schema,
            tool_choice=None,
        )
        text: list[str] = []
        async with contextlib.aclosing(self.run_events(step)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    text.append(event.text)
                else:
                    await emit(event)
        return "".join(text)

    async def _prompted(self, emit: Emit) -> None:
        messages = list(self.request.messages)
        required = self.request.tool_choice == "required"
        results: list[str] = []
        seen: set[str] = set()
        for round_ in range(self.max_rounds):
            decision = parse_decision(await self._decide(emit, messages, required))
            if isinstance(decision, str):
                if _looks_like_json(decision):  # a call that did not parse: answer instead
                    break
                if self.request.params.max_tokens or self.request.params.stop:
                    break  # the answer must honour the client's limits: generate it so
                await emit(TextDelta(decision))  # answered in prose: that is the answer
                return
            if decision is None:
                break
            name, arguments = decision
            key = json.dumps([name, arguments], sort_keys=True)
            if key in seen:  # the same call again would get the same result: answer now
                break
            seen.add(key)
            call = ToolCall(f"call_{round_ + 1}", name, json.dumps(arguments))
            output = await self._call(emit, call)
            results.append(f"- {name}({call.arguments}) returned: {output}")
            messages.append(
                Message("assistant", json.dumps({"tool": name, "arguments": arguments}))
            )
            messages.append(Message("user", f"Result of {name}: {output}"))
            required = False
        await self._answer(emit, results)

    async def _answer(self, emit: Emit, results: list[str]) -> None:
        messages = list(self.request.messages)
        if results:
            last = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
            note = "Function results:\n" + "\n".join(results)
            if last >= 0:
                question = messages[last]
                messages[last] = dataclasses.replace(
                    question, content=f"{note}\n\nUsing these results, answer:\n{question.content}"
                )
            else:
                messages.append(Message("user", note))
        step = dataclasses.replace(
            self.request, messages=tuple(messages), functions=(), tool_choice=None
        )
        async with contextlib.aclosing(self.run_events(step)) as events:
            async for event in events:
                await emit(event)
