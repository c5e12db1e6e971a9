"""The CLI's flags: one meaning per flag name across every command, the shared ones declared once (parent parsers),
and every value type through the one adapter over perturbkit.types."""

from __future__ import annotations

import argparse
from collections import defaultdict

import pytest

from perturbkit.cli import build_parser, main

SHARED = ("--data", "--demo-genes", "--layer", "--oof", "--submissions", "--configs-dir", "--no-progress", "--json", "--resamples",
          "--bootstrap-seed", "--de-threshold", "--slug", "--kernels", "--user", "--competition", "--follow", "--interval")


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))
    if path:
        yield " ".join(path), parser


def _options() -> dict[str, list[tuple[str, argparse.Action]]]:
    """Every option string -> (command, its action) for each command declaring it."""
    found = defaultdict(list)
    for command, parser in _commands(build_parser()):
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                for option in action.option_strings:
                    found[option].append((command, action))
    return found


def _kind(action: argparse.Action) -> str:
    return getattr(action.type, "__name__", None) or repr(action.type)


def test_every_flag_name_has_one_dest_and_one_type_across_commands():
    meanings = {option: {(action.dest, _kind(action)) for _, action in uses} for option, uses in _options().items()}
    assert {option: found for option, found in meanings.items() if len(found) > 1} == {}


def test_seed_is_only_the_models_seed_and_each_other_seed_has_its_own_name():
    options = _options()
    assert [command for command, _ in options["--seed"]] == ["cv"]
    for flag, commands in (("--bootstrap-seed", {"runs", "score"}), ("--search-seed", {"blend"}), ("--split-seed", {"public-split"}),
                           ("--world-seed", {"demo"}), ("--sampler-seed", {"tune"})):
        assert {command for command, _ in options[flag]} == commands, flag
        assert all("seed" in action.help for _, action in options[flag])
    assert "--config" not in {o for o, uses in options.items() if any(c == "recipe" for c, _ in uses)}
    assert {command for command, _ in options["--recipe"]} >= {"recipe", "blend", "agreement", "results"}


@pytest.mark.parametrize("flag", SHARED)
def test_shared_flags_come_from_one_declaration(flag):
    """A shared flag has one help text everywhere (its default shown per command through %(default)s) and is declared by a
    parent parser, never by the command itself."""
    uses = _options()[flag]
    assert len(uses) >= 2, flag
    assert len({action.help for _, action in uses}) == 1, {command: action.help for command, action in uses}
    assert all(action.help for _, action in uses)


def test_every_value_flag_goes_through_the_shared_adapter():
    """No hand-written argparse type: every flag with a value is text, a Path, or the adapter over perturbkit.types."""
    from pathlib import Path

    from perturbkit.types import flag

    adapter = flag(int).__code__
    for option, uses in _options().items():
        for command, action in uses:
            if action.type is None or action.type is Path:
                continue
            assert action.type.__code__ is adapter, f"{command} {option}: type {action.type!r} is not perturbkit.types.flag"


@pytest.mark.parametrize(("argv", "message"), [
    (["demo", "--genes", "0"], "argument --genes: value = 0: Input should be greater than or equal to 1"),
    (["cv", "--model", "zeros", "--demo-genes", "-5"], "argument --demo-genes: value = -5: Input should be greater than or equal to 1"),
    (["score", "--truth", "demo", "--demo-genes", "18212"], "argument --demo-genes: value = 18212: Input should be less than or equal to 18211"),
    (["demo", "--world-seed", "-1"], "argument --world-seed: value = -1: Input should be greater than or equal to 0"),
    (["public-split", "--splits", "0"], "argument --splits: value = 0: Input should be greater than or equal to 1"),
    (["cv", "--model", "zeros", "--seeds", "0,x"], "argument --seeds: '0,x' is not comma-separated whole numbers"),
    (["cv", "--model", "zeros", "--demo-genes", "many"], "argument --demo-genes: 'many' is not a whole number"),
])
def test_a_bad_flag_value_is_named_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_demo_genes_zero_means_every_gene_in_every_command():
    parser = build_parser()
    assert parser.parse_args(["cv", "--model", "zeros", "--demo-genes", "0"]).demo_genes is None
    assert parser.parse_args(["agreement"]).demo_genes == 2000 and parser.parse_args(["agreement", "--demo-genes", "0"]).demo_genes is None
    assert parser.parse_args(["score", "--truth", "demo", "--demo-genes", "300"]).demo_genes == 300
    assert parser.parse_args(["agreement"]).oof != parser.parse_args(["cv", "--model", "zeros"]).oof  # one action, each its default


def test_float_flags_take_numbers_and_leave_their_checks_to_the_library(capsys):
    parser = build_parser()
    assert parser.parse_args(["score", "--truth", "demo", "--de-threshold", "0.5"]).de_threshold == 0.5
    assert parser.parse_args(["kernel", "status", "--interval", "2.5"]).interval == 2.5
    assert main(["score", "--truth", "demo", "--de-threshold", "nan"]) == 2  # refused by score_settings, by name
    assert "--de-threshold = nan" in capsys.readouterr().err
