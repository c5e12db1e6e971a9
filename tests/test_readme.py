"""The documentation runs as written: every shell command in a fenced bash block of README.md and docs/*.md names
an existing make target (with variables the Makefile declares) or an existing perturbkit subcommand and its flags,
read from the live parser; and the README stays a front page (short, the real-data path near the top)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from perturbkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}
MAKE_OPTIONS_WITH_VALUE = {"-o", "-f", "-C", "-j", "-W"}
PERTURBKIT_PREFIXES = (["perturbkit"], [".venv/bin/perturbkit"], ["python", "-m", "perturbkit"], ["python3", "-m", "perturbkit"],
                       [".venv/bin/python", "-m", "perturbkit"])


def shell_commands(text: str) -> list[tuple[int, str, list[str]]]:
    """(line, command text, tokens) of every command in the fenced shell blocks of a markdown text: continued lines
    joined, comments dropped, split at ``&&``, ``;``, ``|`` and the like, leading ``NAME=value`` assignments dropped."""
    commands, block, start, language = [], None, 0, None
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line.strip())
        if fence and block is None:
            block, language, start = [], fence.group(1), number + 1
        elif fence:
            if language in SHELL_LANGUAGES:
                commands += _block_commands(block, start)
            block = None
        elif block is not None:
            block.append(line)
    return commands


def _block_commands(lines: list[str], start: int) -> list[tuple[int, str, list[str]]]:
    out, pending, first = [], "", start
    for offset, line in enumerate(lines):
        if not pending:
            first = start + offset
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        lexer = shlex.shlex(pending, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in OPERATORS or set(token) <= set("&|;()"):
                while command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0]):
                    command.pop(0)
                if command:
                    out.append((first, pending.strip(), command))
                command = []
            else:
                command.append(token)
        pending = ""
    return out


def makefile_names(makefile: Path = ROOT / "Makefile") -> tuple[set[str], set[str]]:
    """The Makefile's targets and its user variables (the ``?=`` lines)."""
    text = makefile.read_text()
    targets = set(re.findall(r"^([A-Za-z][A-Za-z0-9_.-]*):(?!=)", text, flags=re.MULTILINE))
    variables = set(re.findall(r"^([A-Z_]+) \?=", text, flags=re.MULTILINE))
    return targets, variables


def check_make(tokens: list[str], targets: set[str], variables: set[str]) -> list[str]:
    problems, skip = [], False
    for token in tokens[1:]:
        if skip:
            skip = False
        elif token.startswith("-"):
            skip = token in MAKE_OPTIONS_WITH_VALUE
        elif "=" in token:
            name = token.split("=", 1)[0]
            if name not in variables:
                problems.append(f"make variable {name} is not declared in the Makefile (NAME ?= ...)")
        elif token not in targets:
            problems.append(f"make target {token!r} does not exist")
    return problems


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_perturbkit(arguments: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Problems of ``perturbkit ARGUMENTS`` against the live parser: every subcommand (nested ones too, e.g.
    ``kernel build``) exists, every flag exists on the (sub)command it is given to, and a value with fixed
    choices is one of them."""
    problems, path, index = [], ["perturbkit"], 0
    while index < len(arguments):
        token = arguments[index]
        index += 1
        if token.startswith("-") and len(token) > 1:
            flag, _, value = token.partition("=")
            action = parser._option_string_actions.get(flag)
            if action is None:
                problems.append(f"{' '.join(path)} has no option {flag}")
                continue
            if action.nargs == 0 or value:
                continue
            count = 1 if action.nargs in (None, "?") else action.nargs if isinstance(action.nargs, int) else len(arguments)
            values = []
            while index < len(arguments) and len(values) < count and not arguments[index].startswith("-"):
                values.append(arguments[index])
                index += 1
            if action.choices is not None:
                problems += [f"{' '.join(path)} {flag}: {v!r} is not one of {sorted(action.choices)}"
                             for v in values if v not in action.choices]
            continue
        subcommands = _subcommands(parser)
        if subcommands:
            if token not in subcommands:
                problems.append(f"{' '.join(path)} has no subcommand {token!r}")
                break
            parser = subcommands[token]
            path.append(token)
    return problems


def check_command(tokens: list[str], targets: set[str], variables: set[str], parser: argparse.ArgumentParser) -> list[str]:
    """Problems of one documented command; commands of other programs (pip, git, kaggle, ...) have none."""
    if tokens[0] == "make":
        return check_make(tokens, targets, variables)
    for prefix in PERTURBKIT_PREFIXES:
        if tokens[:len(prefix)] == prefix:
            return check_perturbkit(tokens[len(prefix):], parser)
    return []


@pytest.fixture(scope="module")
def names():
    return (*makefile_names(), build_parser())


DOCUMENTED = [(path, line, text, tokens) for path in DOCS for line, text, tokens in shell_commands(path.read_text())]


@pytest.mark.parametrize(("path", "line", "text", "tokens"), DOCUMENTED,
                         ids=[f"{path.relative_to(ROOT)}:{line}" for path, line, _, _ in DOCUMENTED])
def test_every_documented_command_names_an_existing_target_or_cli_command_and_flag(names, path, line, text, tokens):
    problems = check_command(tokens, *names)
    assert not problems, f"{path.relative_to(ROOT)}:{line}: {text}\n  " + "\n  ".join(problems)


def test_the_readme_documents_make_targets_and_cli_commands():
    """The parser of the code blocks finds the README's commands (a parser finding none would pass everything)."""
    commands = [tokens for _, _, tokens in shell_commands((ROOT / "README.md").read_text())]
    assert sum(tokens[0] == "make" for tokens in commands) >= 10
    assert any(tokens[:3] == [".venv/bin/python", "-m", "perturbkit"] for tokens in commands)


def test_the_checker_catches_a_missing_target_variable_subcommand_flag_and_choice(names):
    text = "\n".join(["```bash", "make cv MODEL=mlp && make nosuchtarget", "make cv NOSUCHVARIABLE=1  # comment",
                      "perturbkit kernel build --user me --no-such-flag \\", "  --force",
                      ".venv/bin/python -m perturbkit kernel nosuch", "perturbkit cv --model m --scheme nosuch",
                      "PERTURBKIT_X=1 perturbkit runs --truth demo | head", "pip install perturbkit", "```",
                      "```python", "make nosuchtarget", "```"])
    found = {(line, " ".join(tokens)): check_command(tokens, *names) for line, _, tokens in shell_commands(text)}
    assert found == {
        (2, "make cv MODEL=mlp"): [],
        (2, "make nosuchtarget"): ["make target 'nosuchtarget' does not exist"],
        (3, "make cv NOSUCHVARIABLE=1"): ["make variable NOSUCHVARIABLE is not declared in the Makefile (NAME ?= ...)"],
        (4, "perturbkit kernel build --user me --no-such-flag --force"): ["perturbkit kernel build has no option --no-such-flag"],
        (6, ".venv/bin/python -m perturbkit kernel nosuch"): ["perturbkit kernel has no subcommand 'nosuch'"],
        (7, "perturbkit cv --model m --scheme nosuch"):
            [f"perturbkit cv --scheme: 'nosuch' is not one of {sorted(_subcommands(names[2])['cv']._option_string_actions['--scheme'].choices)}"],
        (8, "perturbkit runs --truth demo"): [],
        (8, "head"): [],
        (9, "pip install perturbkit"): [],
    }


def test_the_readme_is_a_front_page_with_the_real_data_path_near_the_top():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move a topic to docs/"
    real_data = [number for number, line in enumerate(lines, 1) if re.match(r"^##+ .*real data", line, flags=re.IGNORECASE)]
    assert real_data and real_data[0] < 80, f"README.md: the real-data section starts at line {real_data[:1] or 'none'}"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", DOCS, ids=[str(path.relative_to(ROOT)) for path in DOCS])
def test_every_relative_link_resolves_to_a_file_and_heading(path):
    """Links between the README and docs/ pages resolve: the file exists and a #fragment names one of its headings."""
    problems = []
    for target, fragment in re.findall(r"\]\(((?![a-z]+:)[^)#\s]*)(?:#([^)\s]+))?\)", path.read_text()):
        linked = (path.parent / target).resolve() if target else path
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md":
            headings = {_anchor(line.lstrip("#")) for line in linked.read_text().splitlines() if line.startswith("#")}
            if fragment not in headings:
                problems.append(f"{target}#{fragment}: no such heading")
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def test_the_readme_links_the_topic_pages():
    readme = (ROOT / "README.md").read_text()
    pages = set(re.findall(r"\]\((docs/[\w.-]+\.md)[#)]", readme))
    assert {"docs/validation.md", "docs/models.md", "docs/leaderboard.md", "docs/reliability.md", "docs/extending.md",
            "docs/development.md", "docs/results.md"} <= pages
