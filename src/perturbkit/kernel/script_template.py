"""perturbkit Kaggle kernel for open-problems-single-cell-perturbations (built by `perturbkit kernel build`).

Runs offline: finds the perturbkit wheel in the attached code dataset (CODE_DATASET below),
checks its sha256, installs it with `pip install --no-deps --no-index` into a private directory,
installs missing dependencies from attached datasets of wheels (made with `perturbkit kernel deps`),
re-runs the configured models on the competition data and writes /kaggle/working/submission.csv.

Pipeline: __PERTURBKIT_SUMMARY__

Environment variables, for running it elsewhere:
  PERTURBKIT_KAGGLE_INPUT    the input root (default /kaggle/input)
  PERTURBKIT_KAGGLE_WORKING  where submission.csv goes (default /kaggle/working)
  PERTURBKIT_KAGGLE_SITE     the directory the wheel is installed into (default: a temporary one, removed at exit)
"""

import atexit
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

WHEEL_NAME = "__PERTURBKIT_WHEEL_NAME__"
WHEEL_SHA256 = "__PERTURBKIT_WHEEL_SHA256__"
CODE_DATASET = "__PERTURBKIT_CODE_DATASET__"  # holds perturbkit-<sha256[:12]>/<WHEEL_NAME>
REQUIREMENTS_JSON = "__PERTURBKIT_REQUIREMENTS__"  # the wheel's dependencies
SPEC_JSON = "__PERTURBKIT_SPEC__"  # the pipeline: members (model configs), weights, scale, clip
SKIP_REQUIREMENTS = {"kaggle", "six"}  # the kernel itself never calls the Kaggle API


def log(message):
    print(f"[perturbkit {time.strftime('%H:%M:%S')}] {message}", flush=True)


def pip_install(site, args):
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
               "--no-warn-script-location", "--quiet", "--upgrade", "--target", str(site), *args]
    subprocess.run(command, check=True)


def unsatisfied(requirements):
    """Requirements (name, specifier) whose distribution is missing or of a version outside the specifier."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        Requirement = None
    result = []
    for text in requirements:
        if Requirement is not None:
            requirement = Requirement(text)
            name, specifier = requirement.name, requirement.specifier
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
        else:
            name, specifier = re.split(r"[<>=!~;\[ ]", text, maxsplit=1)[0], None
        if name.lower() in SKIP_REQUIREMENTS:
            continue
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            result.append((name, text))
            continue
        if specifier is not None and not specifier.contains(version, prereleases=True):
            result.append((name, text))
    return result


def wheel_dirs(input_root):
    """Directories under the input root (attached datasets) that hold .whl files."""
    found = set()
    if input_root.is_dir():
        for depth in ("*/*.whl", "*/*/*.whl", "*/*/*/*.whl", "*/*/*/*/*.whl"):
            found.update(path.parent for path in input_root.glob(depth))
    return sorted(found)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_wheel(input_root):
    """This build's wheel under the input root, recognised by its sha256 (other versions may be attached too)."""
    seen = []
    for depth in ("*/", "*/*/", "*/*/*/", "*/*/*/*/"):
        for path in sorted(input_root.glob(depth + WHEEL_NAME)):
            digest = sha256_of(path)
            if digest == WHEEL_SHA256:
                return path
            seen.append(f"{path} (sha256 {digest[:12]})")
    found = f"; found only {', '.join(seen)}" if seen else ""
    raise SystemExit(
        f"no {WHEEL_NAME} with sha256 {WHEEL_SHA256[:12]} under {input_root}{found}: attach the dataset {CODE_DATASET} and upload "
        f"this build's version of it (kaggle datasets version -p kernels/{CODE_DATASET.split('/')[1]} -m 'perturbkit {WHEEL_SHA256[:12]}')"
    )


def install(site, input_root):
    wheel = find_wheel(input_root)
    pip_install(site, [str(wheel)])
    log(f"installed {wheel} (sha256 {WHEEL_SHA256[:12]} checked) into {site}")
    missing = unsatisfied(json.loads(REQUIREMENTS_JSON))
    if not missing:
        return
    links = wheel_dirs(input_root)
    if not links:
        log("missing dependencies and no attached dataset of wheels: " + ", ".join(text for _, text in missing))
        return
    log("installing from attached wheels: " + ", ".join(name for name, _ in missing))
    find_links = [arg for path in links for arg in ("--find-links", str(path))]
    for name, text in missing:
        try:
            pip_install(site, [*find_links, text])
        except subprocess.CalledProcessError:
            log(f"could not install {text} from the attached wheels; continuing without it")


def find_competition_dir(input_root, competition):
    direct = input_root / competition
    if (direct / "de_train.parquet").is_file():
        return direct
    for depth in ("*/de_train.parquet", "*/*/de_train.parquet", "*/*/*/de_train.parquet"):
        for path in sorted(input_root.glob(depth)):
            if competition in path.parts:
                return path.parent
    raise SystemExit(f"no de_train.parquet for {competition} under {input_root}: attach the competition data")


def main():
    input_root = Path(os.environ.get("PERTURBKIT_KAGGLE_INPUT", "/kaggle/input"))
    working = Path(os.environ.get("PERTURBKIT_KAGGLE_WORKING", "/kaggle/working"))
    if os.environ.get("PERTURBKIT_KAGGLE_SITE"):
        site = Path(os.environ["PERTURBKIT_KAGGLE_SITE"])
        site.mkdir(parents=True, exist_ok=True)
    else:
        site = Path(tempfile.mkdtemp(prefix="perturbkit-site-"))
        atexit.register(shutil.rmtree, site, ignore_errors=True)
    install(site, input_root)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    import perturbkit
    from perturbkit.kernel.pipeline import KernelSpec, run_pipeline

    log(f"perturbkit from {Path(perturbkit.__file__).parent}")
    spec = KernelSpec.from_json(json.loads(SPEC_JSON))  # the one parse of the embedded spec, checked
    data_dir = find_competition_dir(input_root, spec.competition)
    run_pipeline(spec, data_dir, working / "submission.csv", log=log)


if __name__ == "__main__":
    main()
