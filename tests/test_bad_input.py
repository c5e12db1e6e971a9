"""Every bad input of the CLI: exit 2, a message naming the file, key or value, no traceback, and no new file.

Each case runs ``perturbkit`` in-process on the small demo world. Its inputs are made first; then every file
under the test's folder (outputs, run store, demo root) is listed before and after the command. The full-disk
and read-only cases need a small tmpfs mount and are skipped, with the reason, where mounting is not permitted.
"""

from __future__ import annotations

import builtins
import errno
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from perturbkit.cli import main
from perturbkit.config import load_config
from perturbkit.cv import run_cv, save_run
from perturbkit.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
NOT_UTF8 = b"model = \"zeros\"\n# caf\xe9 \xff\n"


@pytest.fixture(scope="module")
def stored(tmp_path_factory, small_world) -> Path:
    """Two runs a blend could use, so a refused blend is refused for its input and nothing else."""
    oof = tmp_path_factory.mktemp("store") / "oof"
    dataset = load_dataset(small_world)
    for model in ("zeros", "compound_mean"):
        save_run(run_cv(dataset, load_config(model, configs_dir=CONFIGS), progress=False), oof)
    return oof


@dataclass
class Context:
    world: Path  # the small demo world (read-only)
    stored: Path  # its run store (read-only)
    tmp: Path  # the test's folder: inputs, outputs, demo root

    def copy_world(self) -> Path:
        world = self.tmp / "world"
        shutil.copytree(self.world, world)
        return world

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path


def cv(ctx: Context, *extra: str, model: str = "zeros", data: str | Path | None = None) -> list[str]:
    return ["cv", "--model", model, "--configs-dir", str(CONFIGS), "--data", str(data or ctx.world), "--oof", str(ctx.tmp / "oof"),
            "--no-progress", *extra]


def blend(ctx: Context, *extra: str, submissions: Path | None = None) -> list[str]:
    return ["blend", "--data", str(ctx.world), "--oof", str(ctx.stored), "--submissions", str(submissions or ctx.tmp / "submissions"),
            *extra]


def recipe(ctx: Context, text: str | bytes) -> list[str]:
    return ["recipe", "--recipe", str(ctx.write("recipe.toml", text)), "--configs-dir", str(CONFIGS), "--data", str(ctx.world),
            "--oof", str(ctx.tmp / "oof"), "--submissions", str(ctx.tmp / "submissions"), "--no-progress"]


def agreement(ctx: Context, *extra: str) -> list[str]:
    return ["agreement", "--variants", "default", "--schemes", "test_like", "--demo-genes", "50",
            "--oof", str(ctx.tmp / "oof"), "--out", str(ctx.tmp / "reports"), *extra]


def world_with(name: str, content: bytes | None) -> Callable[[Context], list[str]]:
    """cv on a copy of the world whose file ``name`` holds ``content`` (None: is a directory)."""

    def args(ctx: Context) -> list[str]:
        world = ctx.copy_world()
        (world / name).unlink()
        (world / name).mkdir() if content is None else (world / name).write_bytes(content)
        return cv(ctx, data=world)

    return args


def score(ctx: Context, *extra: str) -> list[str]:
    return ["score", str(ctx.world / "sample_submission.csv"), "--truth", str(ctx.world / "test_truth.parquet"), *extra]


def swapped_template(world: Path) -> str:
    """The world's sample_submission.csv with its first two gene columns swapped."""
    lines = (world / "sample_submission.csv").read_text().splitlines()
    swapped = []
    for line in lines:
        cells = line.split(",")
        cells[1], cells[2] = cells[2], cells[1]
        swapped.append(",".join(cells))
    return "\n".join(swapped) + "\n"


TWO_MEMBERS = '[[members]]\nmodel = "zeros"\n[[members]]\nmodel = "compound_mean"\n'

# (id, the command's arguments given the context, what the message must name)
CASES = [
    ("blend trials=abc", lambda c: blend(c, "--set", "trials=abc"), ["trials = 'abc'", "integer"]),
    ("blend scale=maybe", lambda c: blend(c, "--set", "scale=maybe"), ["scale = 'maybe'", "boolean"]),
    ("blend name with a path", lambda c: blend(c, "--name", "../../x"), ["--name '../../x'", "path separator"]),
    ("kfold folds > rows", lambda c: cv(c, "--set", 'cv.scheme="kfold"', "--set", "cv.n_splits=100000"),
     ["cv.n_splits=100000", "614 rows"]),
    ("mlp negative width", lambda c: cv(c, "--set", "params.hidden=[-5]", model="mlp"), ["params.hidden", "[-5]"]),
    ("mlp unknown train key", lambda c: cv(c, "--set", "params.train.epochs=0", model="mlp"),
     ["params.train.epochs", "known keys of params.train", "max_epochs"]),
    ("transfer_net unknown train key", lambda c: cv(c, "--set", "params.train.epochs=0", model="transfer_net"),
     ["params.train.epochs", "known keys of params.train", "max_epochs"]),
    ("cv demo-genes -5", lambda c: cv(c, "--demo-genes", "-5", data="demo"), ["--demo-genes", "value = -5", "greater than or equal to 1"]),
    ("cv demo-genes 999999", lambda c: cv(c, "--demo-genes", "999999", data="demo"), ["--demo-genes", "value = 999999", "less than or equal to 18211"]),
    ("agreement demo-genes -5", lambda c: [*agreement(c), "--demo-genes", "-5"], ["--demo-genes", "value = -5", "greater than or equal to 1"]),
    ("agreement demo-genes 999999", lambda c: [*agreement(c), "--demo-genes", "999999"], ["--demo-genes", "value = 999999", "less than or equal to 18211"]),
    ("demo genes 0", lambda c: ["demo", "--genes", "0", "--root", str(c.tmp / "demo")], ["--genes", "value = 0", "greater than or equal to 1"]),
    ("config not UTF-8", lambda c: cv(c, "--config", str(c.write("zeros.toml", NOT_UTF8))), ["zeros.toml", "not UTF-8", "0xe9"]),
    ("blend config not UTF-8", lambda c: blend(c, "--blend-config", str(c.write("blend.toml", NOT_UTF8))),
     ["blend.toml", "not UTF-8"]),
    ("recipe not UTF-8", lambda c: recipe(c, NOT_UTF8), ["recipe.toml", "not UTF-8"]),
    ("recipe seeds of text", lambda c: recipe(c, 'seeds = ["a"]\n' + TWO_MEMBERS), ["recipe.toml", "seeds = ['a']"]),
    ("recipe seeds a number", lambda c: recipe(c, "seeds = 3\n" + TWO_MEMBERS), ["recipe.toml", "seeds = 3", "list"]),
    ("recipe one member", lambda c: recipe(c, '[[members]]\nmodel = "zeros"\n'), ["recipe.toml", "1 [[members]]", "at least two"]),
    ("recipe set a string", lambda c: recipe(c, TWO_MEMBERS + 'set = "params.alpha=3"\n'),
     ["recipe.toml", "member 2", "set = 'params.alpha=3'", "list"]),
    ("template not UTF-8", world_with("sample_submission.csv", b"id,A1BG\n0,0.0\n1,\xff\n"),
     ["sample_submission.csv", "not UTF-8", "0xff", "line 3"]),
    ("template a directory", world_with("sample_submission.csv", None), ["sample_submission.csv", "not a file"]),
    ("id_map random bytes", world_with("id_map.csv", bytes(range(256)) * 8), ["id_map.csv", "not UTF-8"]),
    ("agreement one model", lambda c: agreement(c, "--models", "zeros"), ["--models zeros", "at least two"]),
    ("agreement unknown model", lambda c: agreement(c, "--models", "zeros,nosuch"), ["'nosuch'", "known"]),
    ("submit template mismatch", lambda c: ["submit", str(c.write("mine.csv", "id,A1BG\n0,0.5\n")), "-m", "x",
                                            "--template", str(c.write("template.csv", "id,A1BG\n0,0\n1,0\n"))],
     ["mine.csv", "template.csv", "missing [1]"]),
    ("push an unbuilt kernel", lambda c: ["kernel", "push", "--dir", str(c.tmp / "kernels" / "none")],
     ["kernel-metadata.json", "not found", "kernel build"]),
    ("kernel deps dataset with a path", lambda c: ["kernel", "build", "--model", "zeros", "--configs-dir", str(CONFIGS), "--user", "someone",
                                                   "--kernels", str(c.tmp / "kernels"), "--deps-dataset", "a b/../c"],
     ["dataset source 'a b/../c'", "--deps-dataset"]),
    ("score de-threshold nan", lambda c: score(c, "--de-threshold", "nan"), ["--de-threshold = nan", "finite"]),
    ("score de-threshold inf", lambda c: score(c, "--de-threshold", "inf"), ["--de-threshold = inf", "finite"]),
    ("score de-threshold -5", lambda c: score(c, "--de-threshold", "-5"), ["--de-threshold = -5.0", "greater than or equal to 0"]),
    ("score bootstrap seed -1", lambda c: score(c, "--bootstrap-seed", "-1"), ["--bootstrap-seed = -1", "greater than or equal to 0"]),
    ("score not UTF-8", lambda c: ["score", str(c.write("mine.csv", b"id,caf\xe9\n0,1\n")), "--truth", str(c.world / "test_truth.parquet")],
     ["mine.csv", "not UTF-8", "0xe9", "line 1"]),
    ("cv demo-genes beside a folder", lambda c: cv(c, "--demo-genes", "50"), ["--demo-genes 50", "demo worlds", "drop --demo-genes"]),
    ("check a swapped column pair", lambda c: ["check", str(c.write("mine.csv", swapped_template(c.world))), "--data", str(c.world)],
     ["mine.csv", "column 2 is", "follow its order"]),
]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if not p.is_dir()}


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refuses a value (--demo-genes) with exit 2
        return exc.code


def check_refused(argv: list[str], tmp: Path, capsys, expected: list[str]) -> str:
    before = files_under(tmp)
    code = run(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    for part in expected:
        assert part in err, f"{part!r} not in: {err}"
    assert "Traceback" not in err
    assert all(ch.isprintable() or ch in "\n\t" for ch in err), repr(err)  # no raw bytes reach the terminal
    assert files_under(tmp) == before, sorted(map(str, files_under(tmp) - before))
    return err


@pytest.mark.parametrize(("argv", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_refused_by_name_with_nothing_written(argv, expected, small_world, stored, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERTURBKIT_DEMO_ROOT", str(tmp_path / "demo"))  # a demo world generated would be a new file
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    err = check_refused(argv(Context(small_world, stored, tmp_path)), tmp_path, capsys, expected)
    assert "truth" not in err and "credentials" not in err  # submit's template is no truth; push checks its folder first


# --- a full disk, a read-only folder (tmpfs mounts) --------------------------------------------------


@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount(name, size, read_only=False)``: a tmpfs at ``tmp_path/name``; unmounted at the end."""
    mounted = []

    def mount(name: str, size: str, *, read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({(result.stderr or result.stdout).strip() or result.returncode})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` but ``leave`` bytes (give or take a page)."""
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_a_full_disk_under_oof_is_named_and_leaves_nothing(small_world, tmp_path, mount_tmpfs, capsys):
    disk = mount_tmpfs("disk", "2m")
    fill(disk, leave=16 * 1024)
    argv = ["cv", "--model", "compound_mean", "--configs-dir", str(CONFIGS), "--data", str(small_world),
            "--oof", str(disk / "oof"), "--no-progress"]
    check_refused(argv, disk, capsys, ["no space left on device", str(disk / "oof" / "compound_mean")])
    assert files_under(disk) == {disk / "filler"}


@pytest.mark.parametrize("fails_at", ["csv", "h5ad"])
def test_a_full_disk_under_submissions_is_named_and_leaves_no_blend_file(fails_at, small_world, stored, tmp_path, mount_tmpfs,
                                                                         capsys):
    ctx = Context(small_world, stored, tmp_path)
    assert main(blend(ctx, "--trials", "3")) == 0  # the same blend where there is room: how large its CSV is
    csv_size = (tmp_path / "submissions" / "blend" / "blend.csv").stat().st_size
    capsys.readouterr()
    disk = mount_tmpfs("disk", "4m")
    fill(disk, leave=16 * 1024 if fails_at == "csv" else csv_size + 64 * 1024)
    check_refused(blend(ctx, "--trials", "3", submissions=disk / "submissions"), disk, capsys, ["no space left on device", str(disk / "submissions" / "blend" / f"blend.{fails_at}")])
    assert files_under(disk) == {disk / "filler"}  # a CSV written before the h5ad failed is removed with it


def test_report_into_a_read_only_folder_is_refused_before_drawing(small_world, stored, tmp_path, mount_tmpfs, capsys):
    read_only = mount_tmpfs("read-only", "1m", read_only=True)
    runs = sorted(str(p) for p in stored.glob("*/*"))
    check_refused(["report", "--runs", *runs, "--out", str(read_only / "report")], tmp_path, capsys,
                  [f"--out {read_only / 'report'}", "read-only"])


# --- cv.seeds on a model that takes no seed ----------------------------------------------------------


def test_several_seeds_on_a_model_that_takes_none_warn_before_any_fit(small_dataset, monkeypatch):
    import perturbkit.cv
    from perturbkit.models import build_model, seed_parameters

    assert seed_parameters(build_model(load_config("mlp", configs_dir=CONFIGS), 0)) == ["random_state"]
    assert seed_parameters(build_model(load_config("compound_mean", configs_dir=CONFIGS), 0)) == []

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted")

    monkeypatch.setattr(perturbkit.cv, "_run_folds", no_fit)
    config = load_config("compound_mean", configs_dir=CONFIGS, overrides=["cv.seeds=[0, 1, 2]"])
    with pytest.warns(UserWarning, match=r"'compound_mean' takes no seed .*cv\.seeds \[0, 1, 2\] fits the same model 3 times"), \
            pytest.raises(AssertionError, match="fitted"):
        run_cv(small_dataset, config, progress=False)
    for model, overrides in (("compound_mean", []), ("mlp", ["cv.seeds=[0, 1]"])):  # one seed, or a model that takes it: silent
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(AssertionError, match="fitted"):
                run_cv(small_dataset, load_config(model, configs_dir=CONFIGS, overrides=overrides), progress=False)


# --- unreadable inputs, an unwritable folder below a writable root --------------------------------------


def make_unreadable(path: Path, monkeypatch) -> None:
    """``path`` of mode 000; as root, who reads it anyway, ``open`` refuses it as the kernel refuses anyone else."""
    path.chmod(0)
    if os.geteuid() == 0:
        real_open = builtins.open

        def refusing_open(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and Path(file).resolve() == path.resolve():
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refusing_open)


def test_a_config_of_mode_000_is_named(small_world, tmp_path, monkeypatch, capsys):
    config = tmp_path / "zeros.toml"
    config.write_text('model = "zeros"\n')
    make_unreadable(config, monkeypatch)
    ctx = Context(small_world, tmp_path, tmp_path)
    check_refused(cv(ctx, "--config", str(config)), tmp_path, capsys, [f"{config}: cannot be read (Permission denied)"])


def test_a_run_file_of_mode_000_is_named_before_blending(small_world, stored, tmp_path, monkeypatch, capsys):
    store = tmp_path / "oof"
    shutil.copytree(stored, store)
    (run,) = sorted(store.glob("compound_mean/*"))
    make_unreadable(run / "test.parquet", monkeypatch)
    ctx = Context(small_world, store, tmp_path)
    check_refused(blend(ctx, "--trials", "3"), tmp_path, capsys, [f"{run / 'test.parquet'}: cannot be read (Permission denied)"])


def test_a_read_only_model_folder_under_a_writable_root_is_refused_before_cv(small_world, tmp_path, mount_tmpfs, capsys):
    (tmp_path / "oof").mkdir()
    read_only = mount_tmpfs("oof/zeros", "1m", read_only=True)
    ctx = Context(small_world, tmp_path, tmp_path)
    check_refused(cv(ctx), tmp_path, capsys, [f"--oof {read_only}", "read-only", "nothing was computed"])
