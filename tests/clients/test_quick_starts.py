"""The Go, Java and TypeScript READMEs' quick starts work as written: each README's code block
is its SDK's example file, verbatim, and the example, run the way its README says against the
real services (addresses from LOOPER_DECISION_ADDR / LOOPER_FEEDBACK_ADDR), makes a decision
that is logged and reports the outcome that the label then counts.

The services are the package's stack, with tests/clients/blueprint_quickstart.yaml standing
in for the example use case's blueprint (notification_send without its Feast views)."""

from __future__ import annotations

import re

import pytest

from tests.clients.harness import CLIENTS, fenced_block, run, sdk_lock

QUICK_STARTS = {  # language: (SDK folder, README block, example file)
    "go": ("go", "go", "examples/quickstart/main.go"),
    "java": ("java", "java", "examples/quickstart/Quickstart.java"),
    "typescript": ("typescript", "js", "examples/quickstart.mjs"),
}


def run_example(language: str, env: dict[str, str]) -> str:
    """Runs the example as its README says (Maven offline, as every suite here), built and run
    under one hold of the SDK's lock, so that no other test rebuilds it in between."""
    sdk = CLIENTS / QUICK_STARTS[language][0]
    with sdk_lock(sdk):
        return _build_and_run(language, sdk, env)


def _build_and_run(language: str, sdk, env: dict[str, str]) -> str:
    if language == "go":
        return run(["go", "run", "./examples/quickstart"], sdk, env)
    if language == "java":
        run(["mvn", "-B", "-q", "-o", "compile", "dependency:build-classpath", "-Dmdep.outputFile=target/cp.txt"],
            sdk, env)
        classpath = f"target/classes:{(sdk / 'target' / 'cp.txt').read_text().strip()}"
        return run(["java", "-cp", classpath, "examples/quickstart/Quickstart.java"], sdk, env)
    run(["npm", "run", "--silent", "build"], sdk, env)
    return run(["node", "examples/quickstart.mjs"], sdk, env)


@pytest.mark.parametrize("language", sorted(QUICK_STARTS))
def test_readme_quick_start_is_the_example_and_runs(stack, language):
    folder, info, example = QUICK_STARTS[language]
    sdk = CLIENTS / folder
    assert fenced_block((sdk / "README.md").read_text(), info) == (sdk / example).read_text(), (
        f"the quick start in clients/{folder}/README.md is not {example} verbatim")

    output = run_example(language, stack.env())
    m = re.search(r"^decision (\S+): action=true$", output, re.M)
    assert m and "\nfeedback logged\n" in output, output
    with stack.client() as client:
        logged = client.get_decision("notification_send", m.group(1))
        assert logged.subject["user_id"] == "42" and logged.features["platform"].string_value == "ios", logged
        label = client.get_label("notification_send", m.group(1))
        assert label.outcome_count == 1 and label.value == 1.0, label
