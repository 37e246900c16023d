"""Property-based fuzzing of the server over its own OpenAPI document (schemathesis).

Every documented operation gets requests generated from the document, schema-valid ones and
schema-violating ones, sent with the API key to the app in process (the scripted binding of
tests/conftest.py), from a fixed seed. Each response must be:

- no server error (5xx), except a 501 the operation documents (a route not served);
- a documented status code, in a documented content type, matching the documented schema
  (response headers included).

The bounded run here is a CI test; bench/fuzz.py runs the same with many more cases.
"""

from __future__ import annotations

import contextlib
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import AUTH, BASE_CONFIG

try:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.failures import Failure, FailureGroup
except ImportError as missing:  # not installed, or schemathesis 3 (Python 3.10)
    pytest.skip(
        f"needs schemathesis 4 (pip install 'schemathesis>=4'): {missing}",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow

SEED = 20240613
# Per operation and generation mode: ~300 cases over ~50 operations, ~15 s on 2 cores.
CASES_PER_OPERATION = 3
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class Finding:
    operation: str
    kind: str  # a schemathesis failure code and title, or "server error"
    message: str
    reproduce: str


@dataclass
class FuzzReport:
    cases: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[tuple[str, int]] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    def kinds(self) -> Counter[str]:
        """How many failures of each kind."""
        return Counter(f.kind for f in self.findings)

    def summary(self, limit: int = 10) -> str:
        """The first ``limit`` distinct failures, to read in a test failure."""
        seen: dict[tuple[str, str], Finding] = {}
        for finding in self.findings:
            seen.setdefault((finding.operation, finding.kind), finding)
        lines = [
            f"- {f.operation}: {f.kind}\n{textwrap.indent(f.message, '    ')}\n    {f.reproduce}"
            for f in list(seen.values())[:limit]
        ]
        return f"{len(self.findings)} failures in {self.cases} cases:\n" + "\n".join(lines)


def fuzz_app(config_dir: Path, cases_per_operation: int, seed_value: int = SEED) -> FuzzReport:
    """Fuzz a fresh app on the scripted binding of ``BASE_CONFIG`` (written in
    ``config_dir``): ``cases_per_operation`` cases per operation and generation mode."""
    path = config_dir / "config.toml"
    path.write_text(textwrap.dedent(BASE_CONFIG), encoding="utf-8")
    app = create_app(load_config(path))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)
    report = FuzzReport()
    started = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:
            _fuzz_operation(operation, mode, cases_per_operation, seed_value, report)
    report.seconds = time.perf_counter() - started
    return report


def _fuzz_operation(
    operation: Any, mode: GenerationMode, cases: int, seed_value: int, report: FuzzReport
) -> None:
    @seed(seed_value)
    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), known=st.booleans())
    def run(case: Any, known: bool) -> None:
        if known and mode is GenerationMode.POSITIVE:
            _name_what_exists(case)
        report.cases += 1
        response = case.call(headers=AUTH)
        report.statuses[response.status_code] += 1
        report.by_operation[(operation.label, response.status_code)] += 1
        for kind, message in _problems(case, response):
            report.findings.append(
                Finding(operation.label, kind, message, case.as_curl_command(headers=AUTH))
            )

    # An operation without parameters has no input to break: no negative cases.
    with contextlib.suppress(Unsatisfiable):
        run()


# Random names rarely hit a configured binding or model: half the schema-valid cases name
# ones that exist (BASE_CONFIG), so that they reach the bindings rather than a 404.
_KNOWN = {
    "binding_name": "fake",
    "model_name": "scripted-model",
    "model": "fake/scripted-model",
    "model_id": "fake/scripted-model",
    "binding_type": "llm",
}


def _name_what_exists(case: Any) -> None:
    for names in (case.path_parameters, case.query, case.body):
        if isinstance(names, dict):
            for key, value in _KNOWN.items():
                if key in names:
                    names[key] = value


_CHECKS: list[Callable[..., Any]] = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


def _problems(case: Any, response: Any) -> list[tuple[str, str]]:
    """What is wrong with ``response``: a server error, or what the checks report."""
    found: list[tuple[str, str]] = []
    status = response.status_code
    documented = set(case.operation.responses.status_codes)
    if status >= 500 and not (status == 501 and "501" in documented):
        found.append(("server error", f"{status}: {response.text[:300]}"))
    try:
        case.validate_response(response, checks=_CHECKS, headers=AUTH)
    except Failure as failure:
        found.append(_kind(failure))
    except FailureGroup as group:
        found += [_kind(f) for f in group.exceptions if isinstance(f, Failure)]
    return found


def _kind(failure: Failure) -> tuple[str, str]:
    return f"{failure.code} {failure.title}", str(failure.message)[:600]


def test_fuzzing_the_documented_api_finds_nothing(tmp_path: Path) -> None:
    report = fuzz_app(tmp_path, CASES_PER_OPERATION)
    assert report.cases >= 200, report.cases
    assert not report.findings, report.summary()
