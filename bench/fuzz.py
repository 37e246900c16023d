"""Property-based fuzzing of the whole documented API, the long run (not a test).

The same run as tests/api/test_schema_fuzz.py (schemathesis over the server's own OpenAPI
document, with the key, on the scripted binding, schema-valid and schema-violating requests,
a fixed seed), with many more cases. Prints the cases sent, the statuses answered, the
failures by kind (server errors other than documented 501s; undocumented statuses, content
types, schemas or headers) with the first few in full, and the time taken.

    .venv/bin/python bench/fuzz.py [--per-operation 21] [--seed 20240613] [--show 10]

Needs schemathesis 4 (pip install 'schemathesis>=4'; Python 3.11+). Exit status 1 when
anything failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--per-operation",
        type=int,
        default=21,
        help="cases per operation and generation mode (21: over 2,000 in all)",
    )
    parser.add_argument("--seed", type=int, default=None, help="the test's seed by default")
    parser.add_argument("--show", type=int, default=10, help="distinct failures shown in full")
    args = parser.parse_args()
    try:
        from schemathesis import GenerationMode  # noqa: F401  (schemathesis 4)
    except ImportError as missing:
        print(f"needs schemathesis 4 (pip install 'schemathesis>=4'): {missing}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    from tests.api.test_schema_fuzz import SEED, fuzz_app

    seed = SEED if args.seed is None else args.seed
    with tempfile.TemporaryDirectory() as folder:
        report = fuzz_app(Path(folder), args.per_operation, seed)
    operations = len({operation for operation, _ in report.by_operation})
    print(f"seed {seed}, {args.per_operation} cases per operation and mode")
    print(f"cases       {report.cases} over {operations} operations")
    print(f"time        {report.seconds:.1f} s ({report.cases / report.seconds:.0f} cases/s)")
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(report.statuses.items()))
    print(f"statuses    {statuses}")
    print(f"failures    {len(report.findings)}")
    for kind, count in report.kinds().most_common():
        print(f"  {count:6d}  {kind}")
    if report.findings:
        print()
        print(report.summary(args.show))
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
