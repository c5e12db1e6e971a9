"""The recipe: one command from data to the recommended blend and its submission files.

``configs/recipe.toml`` names the validation scheme, the member models (each with its own
``--set``-style overrides) and the blend options. :func:`run_recipe` cross-validates each member
through the same harness as ``perturbkit cv`` -- reusing a stored run when one with the same data,
config and fold hashes is already under the run store -- then blends the members and writes
the set ``<submissions>/recipe/blend.{csv,h5ad,json}`` (replaced as a whole; a set another command or
configuration wrote needs ``force``). Everything is validated before the first fit; a member
that fails stops the recipe with its name, keeps the runs already stored and writes no blend.
With ``leaderboard = true`` the blend's test rows are scaled by public-leaderboard probes
(:mod:`perturbkit.blend.leaderboard`; on real data the first run writes the probe files).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from perturbkit.config import config_hash, load_config, read_toml, without_tune
from perturbkit.cv import run_cv, save_run, splitter_for
from perturbkit.cv.store import list_runs, read_meta
from perturbkit.data import Dataset
from perturbkit.errors import ConfigError, PerturbkitError
from perturbkit.folds import folds_frame, folds_hash

RECIPE_KEYS = {"scheme", "seeds", "members", "blend", "leaderboard"}
MEMBER_KEYS = {"model", "set"}


class RecipeError(PerturbkitError):
    """A recipe member failed; the message names it and what was kept."""


@dataclass(frozen=True)
class Recipe:
    scheme: str
    seeds: list[int]
    members: list[dict]  # resolved model configs, one per member
    labels: list[str]  # per member: the model and its overrides, e.g. 'transfer_ridge params.n_components=64'
    blend: dict  # BlendOptions values
    source: str
    leaderboard: bool = False  # scale the test rows by public-leaderboard probes (perturbkit.blend.leaderboard)


@dataclass
class MemberOutcome:
    model: str
    label: str
    run_dir: Path
    reused: bool
    seconds: float
    meta: dict


@dataclass
class RecipeResult:
    members: list[MemberOutcome]
    blend: object  # perturbkit.blend.BlendResult
    files: dict[str, Path]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        """Each member's CV (and relative to zeros), whether it ran or was reused, and the blend."""
        scheme = self.members[0].meta["scheme"]
        width = max(22, *(len(o.label) + 1 for o in self.members))
        lines = [f"recipe: {len(self.members)} members, scheme {scheme}", f"{'member':<{width}} {'CV':>8} {'rel':>6} {'sec':>7}  run"]
        for outcome in self.members:
            scores = outcome.meta["scores"]
            state = "stored, reused" if outcome.reused else "ran"
            lines.append(
                f"{outcome.label:<{width}} {scores['overall']:>8.4f} {scores['relative_to_zeros']:>6.3f} {outcome.seconds:>7.1f}  "
                f"{state} {outcome.run_dir.name}"
            )
        scores = self.blend.scores
        zeros = self.members[0].meta["scores"]["zeros"]
        nested = scores["nested"]
        rel = f"{nested / zeros:>6.3f}" if nested is not None and zeros else f"{'':>6}"
        lines.append(f"{'blend (nested)':<{width}} {nested if nested is not None else float('nan'):>8.4f} {rel} {'':>7}  written: {scores['chosen']}")
        lines.extend(self.notes)
        lines.append(f"total {self.seconds:.1f} s; files: " + ", ".join(str(p) for p in self.files.values()))
        return "\n".join(lines)


def load_recipe(path: Path | str, *, configs_dir: Path = Path("configs"), overrides=()) -> Recipe:
    """Read and validate a recipe: every member's config resolved and its model built (by validation), before any work."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe not found")
    raw = read_toml(path)
    unknown = sorted(set(raw) - RECIPE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown recipe key(s) {unknown}; known: {sorted(RECIPE_KEYS)}")
    entries = raw.get("members") or []
    if not isinstance(entries, list) or len(entries) < 2:
        raise ConfigError(f"{path}: the recipe lists {(len(entries) if isinstance(entries, list) else 0) or 'no'} [[members]]; "
                          "a blend needs at least two")
    scheme = str(raw.get("scheme") or load_config("zeros", configs_dir=configs_dir)["cv"]["scheme"])
    seeds = raw.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"{path}: seeds = {seeds!r}: expected a list of distinct whole numbers >= 0, e.g. seeds = [0, 1, 2]")
    members, labels = [], []
    for position, entry in enumerate(entries):
        where = f"{path}: member {position + 1}"
        if not isinstance(entry, dict) or "model" not in entry:
            raise ConfigError(f"{where}: needs model = \"<registered model>\"")
        unknown = sorted(set(entry) - MEMBER_KEYS)
        if unknown:
            raise ConfigError(f"{where} ({entry['model']}): unknown key(s) {unknown}; known: {sorted(MEMBER_KEYS)}")
        member_set = entry.get("set", [])
        if not isinstance(member_set, list) or not all(isinstance(o, str) for o in member_set):
            raise ConfigError(f"{where} ({entry['model']}): set = {member_set!r}: expected a list of \"key=value\" strings, "
                              "e.g. set = [\"params.alpha=3\"]")
        cv_overrides = [f'cv.scheme="{scheme}"', f"cv.seed={seeds[0]}", f"cv.seeds={seeds if len(seeds) > 1 else []}"]
        try:
            # load_config validates by building the model: a bad name or parameter fails here, before any fit
            config = load_config(
                entry["model"], configs_dir=configs_dir, overrides=[*cv_overrides, *member_set, *overrides]
            )
        except PerturbkitError as exc:
            raise ConfigError(f"{where} ({entry['model']}): {exc}") from exc
        members.append(without_tune(config))
        labels.append(" ".join([entry["model"], *member_set]))
    from perturbkit.blend import BlendOptions

    blend = dict(raw.get("blend", {}))
    BlendOptions.from_dict(blend, source=f"{path} [blend]")  # a bad blend option fails before any fit
    leaderboard = raw.get("leaderboard", False)
    if not isinstance(leaderboard, bool):
        raise ConfigError(f"{path}: leaderboard must be true or false, got {leaderboard!r}")
    return Recipe(scheme=scheme, seeds=seeds, members=members, labels=labels, blend=blend, source=str(path),
                  leaderboard=leaderboard)


def recipe_writer(recipe: Recipe) -> dict:
    """The writer of the recipe's set: ``recipe`` with its resolved members, scheme, seeds and blend options."""
    from perturbkit.blend.files import writer

    config = {"scheme": recipe.scheme, "seeds": recipe.seeds, "members": recipe.members, "blend": recipe.blend,
              "leaderboard": recipe.leaderboard}
    return writer("recipe", config, describe=recipe.source)


def _expected_folds_hash(dataset: Dataset, config: dict) -> str:
    return folds_hash(folds_frame(dataset.obs, splitter_for(dataset, config["cv"]).fold_ids(dataset.obs)))


def find_stored_run(oof_root: Path | str, dataset: Dataset, config: dict) -> tuple[Path, dict] | None:
    """The newest complete run (directory, meta) of this config on this data with these folds, if the store has one."""
    runs = list_runs(oof_root)
    if runs.empty:
        return None
    wanted = (dataset.data_hash, config_hash(config), _expected_folds_hash(dataset, config))
    for path in runs.loc[runs["model"] == config["model"], "path"]:
        meta = read_meta(path)
        if (meta.get("data_hash"), meta.get("config_hash"), meta.get("folds_hash")) == wanted:
            return Path(path), meta
    return None


def run_recipe(
    dataset: Dataset,
    recipe: Recipe,
    *,
    oof_root: Path | str,
    submissions: Path | str,
    dataset_id: str,
    progress: bool = False,
    force: bool = False,
    say=print,
) -> RecipeResult:
    """Cross-validate (or reuse) each member, blend them, write the set ``<submissions>/recipe/``."""
    from perturbkit.blend import BlendOptions, blend_runs, write_blend
    from perturbkit.blend.files import RECIPE_SET, check_replaceable, set_folder
    from perturbkit.blend.leaderboard import leaderboard_scale
    from perturbkit.blend.result import with_leaderboard_scale

    identity = recipe_writer(recipe)
    check_replaceable(set_folder(submissions, RECIPE_SET), identity, force=force)  # before any CV
    started = time.perf_counter()
    outcomes: list[MemberOutcome] = []
    for position, (config, label) in enumerate(zip(recipe.members, recipe.labels)):
        model = config["model"]
        stored = find_stored_run(oof_root, dataset, config)
        if stored is not None:
            run_dir, meta = stored
            say(f"[{position + 1}/{len(recipe.members)}] {model}: stored run {run_dir} has this data, config and folds; reused")
            outcomes.append(MemberOutcome(model, label, run_dir, True, 0.0, meta))
            continue
        say(f"[{position + 1}/{len(recipe.members)}] {model}: cross-validating ({recipe.scheme})")
        member_start = time.perf_counter()
        try:
            result = run_cv(dataset, config, progress=progress)
            run_dir = save_run(result, oof_root)
        except Exception as exc:
            kept = ", ".join(str(o.run_dir) for o in outcomes) or "none"
            raise RecipeError(
                f"recipe member {position + 1} ({model}) failed: {type(exc).__name__}: {exc}; "
                f"completed runs kept: {kept}; no blend written"
            ) from exc
        outcomes.append(MemberOutcome(model, label, run_dir, False, time.perf_counter() - member_start, result.meta))
    blend = blend_runs([o.run_dir for o in outcomes], dataset, BlendOptions.from_dict(recipe.blend))
    notes = []
    if recipe.leaderboard:
        scale, note = leaderboard_scale(blend, dataset, submissions)
        notes.append(note)
        if scale is not None:
            blend = with_leaderboard_scale(blend, scale)
    files = write_blend(blend, dataset, submissions, RECIPE_SET, dataset_id=dataset_id, writer=identity, force=force)
    return RecipeResult(members=outcomes, blend=blend, files=files, seconds=time.perf_counter() - started, notes=notes)
