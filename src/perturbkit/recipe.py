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
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from perturbkit.config import load_config, read_toml, without_tune
from perturbkit.cv import find_or_run
from perturbkit.data import Dataset
from perturbkit.errors import ConfigError, PerturbkitError
from perturbkit.types import Seeds

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


class RecipeMember(BaseModel):
    """One ``[[members]]`` entry: a registered model and its ``--set``-style overrides."""

    model_config = ConfigDict(extra="forbid")
    model: str
    set: list[Annotated[str, Field(strict=True)]] = []


class RecipeFile(BaseModel):
    """A recipe file's schema; members are checked one by one (:class:`RecipeMember`) so an error names the member."""

    model_config = ConfigDict(extra="forbid")
    scheme: str | None = None  # None: configs/cv.toml's scheme
    seeds: Annotated[Seeds, Field(min_length=1)] = [0]
    members: Annotated[list[Any], Field(validate_default=True)] = []
    blend: dict[str, Any] = {}
    leaderboard: Annotated[bool, Field(strict=True)] = False

    @field_validator("members")
    @classmethod
    def _at_least_two(cls, value: list) -> list:
        if len(value) < 2:
            raise ValueError(f"the recipe lists {len(value) or 'no'} [[members]]; a blend needs at least two")
        return value


def _checked(schema: type[BaseModel], raw: object, where: str) -> BaseModel:
    """``raw`` through ``schema``, or a :class:`ConfigError` naming each bad key with its value as written."""
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown key {key!r}; known: {sorted(schema.model_fields)}")
            else:
                message = error["msg"].removeprefix("Value error, ")
                if isinstance(raw, dict) and key not in raw:
                    problems.append(f"{key}: {message}")
                else:
                    problems.append(f"{key + ' = ' if key else ''}{raw.get(key) if key else raw!r}: {message}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None


def load_recipe(path: Path | str, *, configs_dir: Path = Path("configs"), overrides=()) -> Recipe:
    """Read and validate a recipe: every member's config resolved and its model built (by validation), before any work."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe not found")
    recipe = _checked(RecipeFile, read_toml(path), str(path))
    scheme = recipe.scheme or load_config("zeros", configs_dir=configs_dir)["cv"]["scheme"]
    seeds = recipe.seeds
    members, labels = [], []
    for position, entry in enumerate(recipe.members):
        name = entry.get("model") if isinstance(entry, dict) else None
        where = f"{path}: member {position + 1}" + (f" ({name})" if name else "")
        member = _checked(RecipeMember, entry, where)
        cv_overrides = [f'cv.scheme="{scheme}"', f"cv.seed={seeds[0]}", f"cv.seeds={seeds if len(seeds) > 1 else []}"]
        try:
            # load_config validates by building the model: a bad name or parameter fails here, before any fit
            config = load_config(member.model, configs_dir=configs_dir, overrides=[*cv_overrides, *member.set, *overrides])
        except PerturbkitError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        members.append(without_tune(config))
        labels.append(" ".join([member.model, *member.set]))
    from perturbkit.blend import BlendOptions

    blend = dict(recipe.blend)
    BlendOptions.from_dict(blend, source=f"{path} [blend]")  # a bad blend option fails before any fit
    return Recipe(scheme=scheme, seeds=seeds, members=members, labels=labels, blend=blend, source=str(path),
                  leaderboard=recipe.leaderboard)


def recipe_writer(recipe: Recipe) -> dict:
    """The writer of the recipe's set: ``recipe`` with its resolved members, scheme, seeds and blend options."""
    from perturbkit.blend.files import writer

    config = {"scheme": recipe.scheme, "seeds": recipe.seeds, "members": recipe.members, "blend": recipe.blend,
              "leaderboard": recipe.leaderboard}
    return writer("recipe", config, describe=recipe.source)


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
        try:
            found = find_or_run(oof_root, dataset, config, progress=progress,
                                say=lambda message, p=position, m=model: say(f"[{p + 1}/{len(recipe.members)}] {m}: {message}"))
        except Exception as exc:
            kept = ", ".join(str(o.run_dir) for o in outcomes) or "none"
            raise RecipeError(
                f"recipe member {position + 1} ({model}) failed: {type(exc).__name__}: {exc}; "
                f"completed runs kept: {kept}; no blend written"
            ) from exc
        outcomes.append(MemberOutcome(model, label, found.path, found.reused, 0.0 if found.reused else found.seconds, found.meta))
    blend = blend_runs([o.run_dir for o in outcomes], dataset, BlendOptions.from_dict(recipe.blend))
    notes = []
    if recipe.leaderboard:
        scale, note = leaderboard_scale(blend, dataset, submissions)
        notes.append(note)
        if scale is not None:
            blend = with_leaderboard_scale(blend, scale)
    files = write_blend(blend, dataset, submissions, RECIPE_SET, dataset_id=dataset_id, writer=identity, force=force)
    return RecipeResult(members=outcomes, blend=blend, files=files, seconds=time.perf_counter() - started, notes=notes)


def run_recipe_file(path: Path, *, oof_root: Path, submissions: Path, data: str = "demo", demo_genes: int | None = None,
                    layer: str = "sign_log10_pval", configs_dir: Path = Path("configs"), overrides=(), dataset_id: str | None = None,
                    progress: bool = False, force: bool = False) -> RecipeResult:
    """``perturbkit recipe``: the recipe file read and checked, every output folder checked writable, then the data loaded
    and :func:`run_recipe` run on it (``dataset_id`` defaults to the data's own)."""
    from perturbkit.blend.command import dataset_id_for
    from perturbkit.data import load
    from perturbkit.io import check_writable
    from perturbkit.models import feature_requirements

    recipe = load_recipe(path, configs_dir=configs_dir, overrides=overrides)
    check_writable(oof_root, "--oof")
    for model in {member["model"] for member in recipe.members}:
        check_writable(oof_root / model, "--oof")
    check_writable(submissions, "--submissions")
    dataset = load(data, demo_genes=demo_genes, layer=layer, require_smiles=any(feature_requirements(c)[0] for c in recipe.members))
    return run_recipe(dataset, recipe, oof_root=oof_root, submissions=submissions, dataset_id=dataset_id_for(data, dataset_id),
                      progress=progress, force=force)
