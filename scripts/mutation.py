"""`make mutation`: mutation testing of the domain modules against the fast tests.

Runs mutmut (its configuration, the module list included, is ``[tool.mutmut]`` in
pyproject.toml) on a fresh copy of the sources in ``mutants/`` (mutmut never edits
``services/``; an interrupted run removes the copy), then writes every mutant that no test
killed to ``tests/mutation/survivors.md`` and ends with one line:

    MUTATION RESULT killed=<n> survived=<n> timeout=<n> score=<pct>%

where score = (killed + timeout) / (killed + timeout + survived). A mutant in code that no
unit test runs ("no tests" in mutmut's words) counts as survived: nothing pins it. One kind
of survivor is set apart as equivalent and listed, not scored: a change of letter case inside
SQL text without quoted literals (SQLite keywords and names ignore case, so no behaviour can
change).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
REPORT = ROOT / "tests" / "mutation" / "survivors.md"
LOG = MUTANTS / "mutmut-run.log"

# mutmut's statuses folded into the three the result line counts.
KILLED = {"killed", "caught by type check"}
TIMEOUT = {"timeout", "segfault"}  # the mutant hung or crashed the test process: detected
SURVIVED = {"survived", "no tests"}
EQUIVALENT = "equivalent (SQL case)"
_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|BEGIN|WHERE|VALUES|AND|FROM)\b")


def main() -> int:
    os.chdir(ROOT)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    reasons = config.get("looper", {}).get("mutation-exclusions", {})
    unexplained = [p for p in config["mutmut"].get("do_not_mutate_patterns", []) if p not in reasons]
    if unexplained:
        print(f"every do_not_mutate_patterns entry needs a reason in [tool.looper.mutation-exclusions]: {unexplained}")
        return 2
    started, commit = time.monotonic(), _commit()
    shutil.rmtree(MUTANTS, ignore_errors=True)  # a fresh run: no result carried over from older sources
    MUTANTS.mkdir()
    children = str(os.cpu_count() or 2)
    print(f"mutmut {version('mutmut')}: mutating {len(config['mutmut']['only_mutate'])} modules, "
          f"{children} workers; progress in {LOG.relative_to(ROOT)}", flush=True)
    for stop in (signal.SIGTERM, signal.SIGHUP):  # stopped as by Ctrl-C: clean up, then exit
        signal.signal(stop, lambda number, frame: sys.exit(128 + number))
    with open(LOG, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "mutmut", "run", "--max-children", children],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait()
        except BaseException:  # Ctrl-C or SIGTERM: stop mutmut and drop the mutated copy
            _stop(process)
            shutil.rmtree(MUTANTS, ignore_errors=True)
            print("mutation run interrupted; mutants/ removed")
            raise
    if code != 0:
        print(LOG.read_text(errors="replace")[-4000:])
        print(f"mutmut run failed with exit code {code}")
        return 1
    statuses, survivors = collect()
    elapsed = time.monotonic() - started
    killed = sum(statuses[s] for s in KILLED)
    timeout = sum(statuses[s] for s in TIMEOUT)
    survived = sum(statuses[s] for s in SURVIVED)
    detected = killed + timeout
    score = 100.0 * detected / (detected + survived) if detected + survived else 0.0
    result = f"MUTATION RESULT killed={killed} survived={survived} timeout={timeout} score={score:.1f}%"
    write_report(config, reasons, statuses, survivors, result, elapsed, commit)
    print(f"statuses: {dict(sorted(statuses.items()))}")
    print(f"surviving mutants: {REPORT.relative_to(ROOT)}")
    print(f"took {int(elapsed // 60)}m{int(elapsed % 60):02d}s")
    print(result)
    return 0


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def collect() -> tuple[Counter, dict[str, list[dict]]]:
    """Every mutant's status, and per module the mutants no test detected."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    statuses: Counter = Counter()
    survivors: dict[str, list[dict]] = defaultdict(list)
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        module = meta.relative_to(MUTANTS).as_posix()[: -len(".meta")]
        functions = _function_lines(ROOT / module)
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            status = status_by_exit_code[code]
            statuses[status] += 1
            if status not in SURVIVED:
                continue
            function = _function_name(name)
            diff = get_diff_for_mutant(name, path=Path(module))
            line, removed, added = _change(diff, functions.get(function, 0))
            if status == "survived" and _sql_case_only(removed, added):
                statuses[status] -= 1
                statuses[EQUIVALENT] += 1
                status = EQUIVALENT
            survivors[module].append(dict(name=name.rsplit(".", 1)[-1], function=function, status=status,
                                          line=line, removed=removed, added=added))
    return statuses, survivors


def _sql_case_only(removed: str, added: str) -> bool:
    """The mutant only changed the letter case of SQL text that holds no quoted literal."""
    return (bool(added) and removed != added and removed.lower() == added.lower()
            and bool(_SQL.search(removed)) and "'" not in removed)


def _function_name(mutant: str) -> str:
    """``services.x.xǁClassǁmethod__mutmut_3`` -> ``Class.method``; ``x_fn__mutmut_3`` -> ``fn``."""
    local = mutant.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    if local.startswith("xǁ"):
        return ".".join(local[2:].split("ǁ"))
    return local[2:]


def _function_lines(path: Path) -> dict[str, int]:
    """The line of each function's ``def`` (methods as ``Class.method``)."""
    lines = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines[prefix + child.name] = child.lineno
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(ast.parse(path.read_text()), "")
    return lines


def _change(diff: str, def_line: int) -> tuple[int, str, str]:
    """The source line of a mutant's change and its old and new text."""
    old = None
    removed, added = [], []
    for text in diff.splitlines():
        header = re.match(r"@@ -(\d+)", text)
        if header:
            old = int(header.group(1))
            continue
        if old is None or text.startswith(("---", "+++")):
            continue
        if text.startswith("-"):
            removed.append((old, text[1:].strip()))
            old += 1
        elif text.startswith("+"):
            added.append(text[1:].strip())
        else:
            old += 1
    first = removed[0][0] if removed else (old or 1)
    return def_line + first - 1, " / ".join(t for _, t in removed), " / ".join(added)


def _commit() -> str:
    """The commit the sources were mutated at (with "+changes" when the tree differed)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "services", "tests/unit"], capture_output=True,
                           text=True, cwd=ROOT)
    return (head.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else "")


def write_report(config: dict, reasons: dict, statuses: Counter, survivors: dict, result: str,
                 elapsed: float, commit: str) -> None:
    mutmut = config["mutmut"]
    out = [
        "# Mutation testing: what no unit test pins",
        "",
        f"Written by `make mutation` (mutmut {version('mutmut')}, {datetime.now(timezone.utc):%Y-%m-%d}, "
        f"{int(elapsed // 60)} min on this machine, at commit {commit}) against `tests/unit`. Each entry below is a change to "
        "the code that every unit test still passed: a behaviour no test checks. \"no tests\" means no unit "
        "test runs that function at all. Both count as survived.",
        "",
        f"    {result}",
        "",
        f"Statuses: {', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}.",
        "",
        "Modules mutated (`[tool.mutmut] only_mutate` in pyproject.toml):",
        "",
        *[f"- `{m}`" for m in mutmut["only_mutate"]],
        "",
        "## Exclusions",
        "",
        "Lines matching these patterns are not mutated (`do_not_mutate_patterns`):",
        "",
        *([f"- `{p}`: {reasons[p]}" for p in mutmut.get("do_not_mutate_patterns", [])] or ["- none"]),
        "",
    ]
    for module in sorted(survivors):
        entries = survivors[module]
        tested = [e for e in entries if e["status"] == "survived"]
        untested = [e for e in entries if e["status"] == "no tests"]
        equivalent = [e for e in entries if e["status"] == EQUIVALENT]
        out += [f"## `{module}`: {len(tested) + len(untested)} survived", ""]
        for e in sorted(tested, key=lambda e: (e["line"], e["name"])):
            change = f"`{e['removed']}` → `{e['added']}`" if e["added"] else f"`{e['removed']}` removed"
            out.append(f"- line {e['line']} ({e['function']}): {change}")
        by_function = defaultdict(list)
        for e in untested:
            by_function[e["function"]].append(e["line"])
        for function, lines in sorted(by_function.items(), key=lambda kv: min(kv[1])):
            out.append(f"- no test runs `{function}` (from line {min(lines)}): {len(lines)} mutants")
        if equivalent:
            lines = ", ".join(str(n) for n in sorted({e["line"] for e in equivalent}))
            out.append(f"- not scored, equivalent: {len(equivalent)} changes of SQL letter case (lines {lines})")
        out.append("")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
