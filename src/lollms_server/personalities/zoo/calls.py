"""lollms' function calling for zoo processors (``APScript.interact_with_function_call``).

A processor lists functions as lollms does: dicts with ``function_name``, ``function`` (a
callable), ``function_description`` and ``function_parameters``. The model is told to answer
with ```` ```function ```` blocks holding ``{"function_name": ..., "function_parameters":
{...}}``; the calls found are run, their results appended to the discussion, and the model
asked again, until it answers without a call (at most ``max_nested_function_calls`` rounds).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["execute_function_calls", "extract_function_calls", "function_prompt", "interact"]

logger = logging.getLogger("lollms_server.personalities.zoo")
_BLOCK = re.compile(r"```(?:function|json)?\s*\n(.*?)```", re.DOTALL)
_CALL_KEYS = ("function_name", "name", "function")
_ARGUMENT_KEYS = ("function_parameters", "function_params", "parameters", "arguments")


def function_prompt(functions: Sequence[Mapping[str, Any]]) -> str:
    """How to call ``functions``, for the system message."""
    lines = [
        "To call a function, answer with a function markdown block holding JSON:",
        "```function",
        '{"function_name": "<name>", "function_parameters": {"<parameter>": <value>}}',
        "```",
        "Call only the functions below, one block per call; their results are added for you.",
        "Available functions:",
    ]
    for function in functions:
        parameters = ", ".join(
            f"{p.get('name')} ({p.get('type', 'str')})"
            for p in function.get("function_parameters", [])
        )
        lines.append(
            f"- {function.get('function_name')}: {function.get('function_description', '')} "
            f"Parameters: {parameters or 'none'}."
        )
    return "\n".join(lines)


def _call_of(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    name = next((data[k] for k in _CALL_KEYS if isinstance(data.get(k), str)), None)
    if name is None:
        return None
    arguments: Any = next((data[k] for k in _ARGUMENT_KEYS if k in data), {})
    return {"function_name": name, "function_parameters": arguments}


def extract_function_calls(text: str) -> list[dict[str, Any]]:
    """The calls in ``text``'s function (or JSON) blocks, as
    ``{"function_name", "function_parameters"}``; blocks that are not calls are skipped."""
    calls = []
    for block in _BLOCK.findall(text):
        try:
            data = json.loads(block)
        except json.JSONDecodeError:
            continue
        for item in data if isinstance(data, list) else [data]:
            call = _call_of(item)
            if call is not None:
                calls.append(call)
    return calls


def execute_function_calls(
    calls: Sequence[Mapping[str, Any]], definitions: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """Each call's result (or the error it raised, as text, for the model to read)."""
    functions: dict[str, Callable[..., Any]] = {
        d["function_name"]: d["function"] for d in definitions if callable(d.get("function"))
    }
    results: list[Any] = []
    for call in calls:
        name = str(call.get("function_name"))
        arguments = call.get("function_parameters", {})
        function = functions.get(name)
        if function is None:
            results.append(f"Function {name} not found.")
            continue
        try:
            if isinstance(arguments, Mapping):
                results.append(function(**arguments))
            elif isinstance(arguments, list):
                results.append(function(*arguments))
            else:
                results.append(function(arguments))
        except Exception as exc:  # reported to the model, as lollms does
            logger.warning("function %s failed: %s: %s", name, type(exc).__name__, exc)
            results.append(f"Error calling {name}: {type(exc).__name__}: {exc}")
    return results


def _result_text(result: Any) -> str:
    if isinstance(result, tuple | list) and result:
        return str(result[0])
    return "" if result is None else str(result)


def _prompter(
    script: Any, context_details: Any, functions: Sequence[Mapping[str, Any]]
) -> Callable[[str], str]:
    """The prompt for a round, given the calls and results so far. ``context_details`` is
    lollms 11's (a dict or LollmsContextDetails: the functions join its system part), or
    older lollms' prompt text (the functions are described before it)."""
    if isinstance(context_details, str):
        head = f"{function_prompt(functions)}\n{context_details}"
        return lambda rounds: head + rounds
    details = copy.copy(context_details)
    details["conditionning"] = "\n\n".join(
        p for p in (details.get("conditionning"), function_prompt(functions)) if p
    )
    history = details.get("discussion_messages") or ""

    def prompt(rounds: str) -> str:
        details["discussion_messages"] = history + rounds
        return str(script.build_prompt_from_context_details(details))

    return prompt


def interact(
    script: Any,
    context_details: Any,
    functions: Sequence[Mapping[str, Any]],
    prompt_after_execution: bool,
    callback: Callable[..., Any] | None,
    max_rounds: int,
) -> str:
    """lollms' ``interact_with_function_call``: generate, run the calls, feed the results
    back (when ``prompt_after_execution``), until an answer without calls."""
    prompt = _prompter(script, context_details, functions)
    rounds = ""
    output = str(script.fast_gen(prompt(rounds), callback=callback))
    calls = extract_function_calls(output)
    answer = output
    for _ in range(max_rounds):
        if not calls:
            break
        results = "\n".join(_result_text(r) for r in execute_function_calls(calls, functions))
        if not prompt_after_execution:
            return f"{output}\n{results}"
        rounds += f"\n{output}\n!@>function calls results:\n{results}\n"
        output = str(script.fast_gen(prompt(rounds), callback=callback))
        calls = extract_function_calls(output)
        answer = f"{results}\n{output}"
    return answer
