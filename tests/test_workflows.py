"""The GitHub Actions workflows parse, and everything they run exists.

Checked for every ``run`` script: each ``gpubench ...`` command line parses with the real
``gpubench`` argument parser (so a renamed subcommand or option fails here, not on a GPU runner
at night); each ``pytest`` option is one pytest knows with the plugins and conftest files of
this repository loaded; each repository path exists; each pip extra is declared in
pyproject.toml. Plus the shape the issue asks for: the CPU workflow runs ``.ci/run``; the GPU
workflow runs on a ``gpu`` self-hosted runner, writes JSON, gates with ``gpubench compare``,
skips the gate when the baseline is missing, and uploads the report and the JSON.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpubench.cli import build_parser
from gpubench.commands import COMMANDS
from gpubench.spec import tomllib

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
#: Top-level repository entries a workflow may name by path.
REPO_DIRS = (".ci", ".github", "benchmarks", "docs", "gpubench", "kernels", "scripts", "suites", "tests")


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path.name}: not a mapping"
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(doc: dict):
    for job_name, job in doc["jobs"].items():
        for step in job["steps"]:
            yield job_name, job, step


def run_scripts(doc: dict) -> list[str]:
    """Every ``run`` script, with line continuations joined."""
    return [step["run"].replace("\\\n", " ") for _, _, step in steps(doc) if "run" in step]


def env_values(doc: dict) -> dict[str, str]:
    env = dict(doc.get("env") or {})
    for _, job, step in steps(doc):
        env.update(job.get("env") or {})
        env.update(step.get("env") or {})
    return {k: str(v) for k, v in env.items()}


def command_lines(script: str, program: str) -> list[list[str]]:
    """Argument lists of every invocation of ``program`` in a shell script (variables become ``1``)."""
    out = []
    pattern = re.compile(rf"(?:^|[\s;&|(]){re.escape(program)}\s([^\n;|&)]*)")
    for m in pattern.finditer(script):
        text = re.sub(r"\$\{[^}]*\}|\$\w+", "1", m.group(1))
        out.append(shlex.split(text))
    return out


@pytest.fixture(scope="module")
def pytest_help() -> str:
    """``pytest --help`` with this repository's benchmarks conftest and plugins loaded."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_both_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "gpu-bench.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_structure(path):
    doc = load(path)
    assert doc["name"] and doc["on"], f"{path.name}: needs a name and triggers"
    for job_name, job in doc["jobs"].items():
        assert job.get("runs-on"), f"{path.name}: job {job_name} has no runs-on"
        assert job.get("steps"), f"{path.name}: job {job_name} has no steps"
    for _, _, step in steps(doc):
        assert ("run" in step) != ("uses" in step), f"{path.name}: a step needs exactly one of run/uses: {step}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_their_tag_and_jobs_hold_least_privilege(path):
    text = path.read_text(encoding="utf-8")
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", text, flags=re.M)
    assert uses, f"{path.name}: no action used?"
    for ref, rest in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned by commit hash"
        assert re.fullmatch(r"\s+# v\d+(\.\d+)*", rest), f"{path.name}: {ref} needs its release tag in a comment"
    doc = load(path)
    assert doc["permissions"] == {}, f"{path.name}: no permission by default; each job asks for its own"
    for job_name, job in doc["jobs"].items():
        assert job.get("permissions") == {"contents": "read"}, f"{path.name}: job {job_name}: least privilege"
    for _, _, step in steps(doc):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}: checkout keeps the token"


def zizmor_exe() -> str | None:
    import shutil

    here = Path(sys.executable).with_name("zizmor")
    return str(here) if here.exists() else shutil.which("zizmor")


def test_zizmor_finds_nothing_above_informational():
    """zizmor (the test extra installs it), offline, over every workflow: any finding above informational fails."""
    import json

    exe = zizmor_exe()
    if exe is None:
        pytest.fail("zizmor is not installed: pip install -e '.[test]'")
    out = subprocess.run([exe, "--offline", "--min-severity", "low", "--format", "json", str(REPO / ".github" /
                          "workflows")], capture_output=True, text=True, timeout=120)
    findings = json.loads(out.stdout or "[]")
    assert findings == [], "\n".join(f"{f.get('ident')}: {f.get('desc')} "
                                     f"({f['locations'][0]['symbolic']['key']})" for f in findings)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_gpubench_commands_parse(path):
    parser = build_parser()
    subcommands = set(COMMANDS)
    calls = [argv for script in run_scripts(load(path)) for argv in command_lines(script, "gpubench")]
    for argv in calls:
        assert argv and argv[0] in subcommands, f"{path.name}: 'gpubench {' '.join(argv)}' is not a subcommand"
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits on a bad option
            pytest.fail(f"{path.name}: 'gpubench {' '.join(argv)}' does not parse (exit {exc.code})")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pytest_options_exist(path, pytest_help):
    for script in run_scripts(load(path)):
        for argv in command_lines(script, "pytest"):
            for arg in argv:
                if arg.startswith("--"):
                    option = arg.split("=", 1)[0]
                    assert re.search(rf"(^|[\s,]){re.escape(option)}([\s=,]|$)", pytest_help, re.M), \
                        f"{path.name}: pytest has no option {option}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_referenced_paths_exist(path):
    doc = load(path)
    baseline = env_values(doc).get("BASELINE")
    texts = run_scripts(doc) + list(env_values(doc).values())
    tokens = {t.strip("\"'") for text in texts for t in re.split(r"[\s=]+", text)}
    for token in sorted(tokens):
        top = token.split("/")[0]
        if top not in REPO_DIRS or token == baseline:
            continue
        assert (REPO / token).exists(), f"{path.name}: references {token}, which does not exist"
    if baseline:
        # The baseline may be missing (no GPU has measured one yet), but only behind a guard.
        assert (REPO / baseline).parent.is_dir()
        assert any('[ ! -f "$BASELINE" ]' in s for s in run_scripts(doc)), \
            f"{path.name}: the gate must handle a missing baseline"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pip_extras_are_declared(path):
    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    env = env_values(load(path))
    for script in run_scripts(load(path)):
        for m in re.finditer(r'-e\s+"?\.\[([^\]]+)\]', script):
            extras = m.group(1)
            if extras.startswith("$"):
                extras = re.search(r"\|\|\s*'([^']*)'", env[extras.strip("${}")]).group(1)
            for extra in extras.split(","):
                assert extra in declared, f"{path.name}: pip extra {extra!r} is not in pyproject.toml"


def test_cpu_workflow_runs_the_ci_script():
    doc = load(REPO / ".github" / "workflows" / "ci.yml")
    scripts = run_scripts(doc)
    assert "bash .ci/run" in scripts
    assert all("self-hosted" not in str(job["runs-on"]) for job in doc["jobs"].values())


def test_gpu_workflow_shape():
    doc = load(REPO / ".github" / "workflows" / "gpu-bench.yml")
    [job] = doc["jobs"].values()
    assert set(job["runs-on"]) >= {"self-hosted", "gpu"}
    script = "\n".join(run_scripts(doc))
    assert re.search(r"pytest benchmarks .*--benchmark-json=bench-out/bench.json", script)
    assert "gpubench import bench-out/bench.json" in script
    assert re.search(r'gpubench compare "\$BASE" "\$NEW_RUN" --threshold "\$THRESHOLD" --html', script)
    assert "gpubench report" in script
    # The runner's history: every run is kept in a store outside the checkout, gated against the last N.
    assert re.search(r'gpubench import bench-out/bench.json --store "\$HISTORY_STORE"', script)
    assert re.search(r'gpubench compare --against-last "\$LAST_N" "\$HIST_RUN" --store "\$HISTORY_STORE" '
                     r'--threshold "\$THRESHOLD" --html bench-out/compare-history.html', script)
    assert 'gpubench history --store "$HISTORY_STORE" -o bench-out/history.html' in script
    history_store = load(REPO / ".github" / "workflows" / "gpu-bench.yml")["env"]["HISTORY_STORE"]
    assert "../" in history_store, "the history store must live outside the checkout (checkout cleans it)"
    [upload] = [s for _, _, s in steps(doc) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"
    for name in ("bench.json", "report.html", "compare.html", "compare-history.html", "history.html"):
        assert f"bench-out/{name}" in upload["with"]["path"]
