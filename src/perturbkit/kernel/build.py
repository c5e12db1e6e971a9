"""``perturbkit kernel build``: kernels/<slug>/ (kernel-metadata.json + a small script) and kernels/<slug>-code/.

Kaggle refuses a kernel source of 1 MB or more, so the code does not travel in the script: the
perturbkit wheel (``pip wheel --no-deps`` of this project) goes into a code dataset folder,
``<slug>-code/perturbkit-<sha256[:12]>/<wheel>`` with its dataset-metadata.json, uploaded with
``kaggle datasets create|version -p`` and attached to the kernel. The script carries the pipeline
spec as JSON and the wheel's sha256, finds the wheel under /kaggle/input, checks the hash and
installs it offline; see ``script_template.py``. The wheel is reproducible (its bytes depend on the
source files' contents only), so rebuilding unchanged source needs no new code-dataset upload. Both folders are written atomically and carry
perturbkit's marker: a folder without it is never replaced (unless ``force``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from importlib import resources
from pathlib import Path

from perturbkit.errors import PerturbkitError
from perturbkit.io import atomic_dir, sha256_file
from perturbkit.kernel.deps import DATASET_METADATA_FILE, block_packages, dataset_metadata
from perturbkit.kernel.metadata import METADATA_FILE, check_no_credentials, kernel_metadata, validate_metadata
from perturbkit.kernel.pipeline import KernelSpec

DEFAULT_SLUG = "perturbkit-submission"
CODE_FILE = "kernel.py"
CODE_SUFFIX = "-code"  # the code dataset's slug: <kernel slug>-code
MAX_SCRIPT_BYTES = 900_000  # Kaggle refuses 1 MB ("The kernel source must be less than 1 megabytes in size.")
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in")
SOURCE_DATE_EPOCH = 315532800  # 1980-01-01 00:00 UTC, the earliest time a zip entry can hold
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class KernelBuildError(PerturbkitError):
    pass


@dataclass(frozen=True)
class KernelBuild:
    folder: Path
    script: Path
    metadata: dict
    wheel: Path  # inside the code dataset folder
    wheel_sha256: str
    code_folder: Path  # the code dataset: upload with kaggle datasets create|version -p <code_folder>
    code_dataset: str  # owner/slug
    warnings: list[str]


def project_root(start: Path | None = None) -> Path:
    """The source tree perturbkit is installed from (editable install), else the current directory's."""
    import perturbkit

    candidates = [Path(perturbkit.__file__).resolve().parents[2], (start or Path.cwd()).resolve()]
    for candidate in candidates:
        if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "perturbkit").is_dir():
            return candidate
    raise KernelBuildError("cannot find the perturbkit source tree (pyproject.toml + src/perturbkit) to build the wheel from")


def build_wheel(out_dir: Path | str, *, project: Path | None = None) -> Path:
    """``pip wheel --no-deps`` of a clean copy of the project (no stale build/ or egg-info) into ``out_dir``."""
    project = project or project_root()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="perturbkit-wheel-src-") as tmp:
        copy = Path(tmp) / "perturbkit"
        copy.mkdir()
        for name in PROJECT_FILES:
            if (project / name).is_file():
                shutil.copy2(project / name, copy / name)
        shutil.copytree(project / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        before = set(out_dir.glob("perturbkit-*.whl"))
        for stale in before:
            stale.unlink()
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check", "-q", "-w", str(out_dir), str(copy)]
        environment = {**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)}
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
        if result.returncode != 0:
            raise KernelBuildError(f"pip wheel failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    wheels = sorted(out_dir.glob("perturbkit-*.whl"))
    if len(wheels) != 1:
        raise KernelBuildError(f"{out_dir}: expected one perturbkit wheel, found {[w.name for w in wheels]}")
    normalize_wheel(wheels[0])
    return wheels[0]


def normalize_wheel(wheel: Path) -> None:
    """Rewrite ``wheel`` in place with sorted entries (the .dist-info last, RECORD at the very end), one
    timestamp and fixed permissions, so two builds of the same source give the same bytes.

    The contents, and so RECORD's hashes, are unchanged; only the zip's metadata is fixed.
    """
    with zipfile.ZipFile(wheel) as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}

    def order(name: str) -> tuple:
        in_dist_info = ".dist-info/" in name
        return in_dist_info, in_dist_info and name.endswith(".dist-info/RECORD"), name

    staging = wheel.with_name(wheel.name + ".partial")
    with zipfile.ZipFile(staging, "w") as target:
        for name in sorted(entries, key=order):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, entries[name], compresslevel=9)
    os.replace(staging, wheel)


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines without extras-only ones."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    return [r for r in message.get_all("Requires-Dist") or [] if "extra ==" not in r]


def _summary(spec: KernelSpec) -> str:
    record = spec.record
    members = ", ".join(f"{m.config['model']} x {w:.4g}" for m, w in zip(record.members, record.weights.weights))
    extra = f", scale {record.weights.scale:g}" + (", clipped to training range" if record.clip else "")
    return f"{record.method} of [{members}]{extra} (from {spec.source})"


def render_script(spec: KernelSpec, wheel: Path, wheel_sha256: str, code_dataset: str) -> str:
    """The kernel script: the template with the wheel's name and hash, its requirements and the spec filled in."""
    template = resources.files("perturbkit.kernel").joinpath("script_template.py").read_text()
    replacements = {
        '"__PERTURBKIT_WHEEL_NAME__"': repr(wheel.name),
        '"__PERTURBKIT_WHEEL_SHA256__"': repr(wheel_sha256),
        '"__PERTURBKIT_CODE_DATASET__"': repr(code_dataset),
        '"__PERTURBKIT_REQUIREMENTS__"': repr(json.dumps(wheel_requirements(wheel))),
        '"__PERTURBKIT_SPEC__"': repr(json.dumps(spec.to_json(), sort_keys=True)),
        "__PERTURBKIT_SUMMARY__": _summary(spec).replace('"""', "'''"),
    }
    for placeholder, value in replacements.items():
        if template.count(placeholder) != 1:
            raise KernelBuildError(f"script template: placeholder {placeholder} found {template.count(placeholder)} times")
        template = template.replace(placeholder, value)
    return template


def check_script_size(script_text: str) -> int:
    size = len(script_text.encode())
    if size >= MAX_SCRIPT_BYTES:
        raise KernelBuildError(
            f"kernel script of {size / 1000:.0f} KB: Kaggle refuses a kernel source of 1 MB or more and perturbkit stops at "
            f"{MAX_SCRIPT_BYTES / 1000:.0f} KB; the spec is too large (fewer members, or smaller configs)"
        )
    return size


def wheel_folder_name(sha256: str) -> str:
    """The code dataset's folder for one wheel: versioned by its hash, so the script finds exactly its own."""
    return f"perturbkit-{sha256[:12]}"


def build_kernel(
    spec: KernelSpec,
    *,
    user: str,
    slug: str = DEFAULT_SLUG,
    out_root: Path | str = "kernels",
    title: str | None = None,
    enable_gpu: bool = False,
    dataset_sources=(),
    wheel: Path | None = None,
    force: bool = False,
) -> KernelBuild:
    """Write ``<out_root>/<slug>/`` (kernel-metadata.json + kernel.py) and ``<out_root>/<slug>-code/`` (the wheel).

    The spec was checked when it was made (:meth:`KernelSpec.checked`); metadata and size are checked and the folders for credentials before anything is
    replaced; a failure leaves the previous build as it was. A folder perturbkit did not create is
    refused unless ``force``. ``dataset_sources`` are attached besides the code dataset.
    """
    code_slug = f"{slug}{CODE_SUFFIX}"
    code_id = f"{user}/{code_slug}"
    sources = [code_id, *[s for s in dataset_sources if s != code_id]]
    metadata = kernel_metadata(user, slug, title=title, code_file=CODE_FILE, enable_gpu=enable_gpu, dataset_sources=sources)
    code_metadata = dataset_metadata(user, code_slug, ["perturbkit"], subtitle="The perturbkit wheel for its Kaggle kernel")
    out_root = Path(out_root)
    folder, code_folder = out_root / slug, out_root / code_slug
    with contextlib.ExitStack() as stack:
        # Both targets are checked (marker) before the wheel is built.
        code_staging = stack.enter_context(atomic_dir(code_folder, replace=True, force=force))
        staging = stack.enter_context(atomic_dir(folder, replace=True, force=force))
        if wheel is None:
            wheel = build_wheel(stack.enter_context(tempfile.TemporaryDirectory(prefix="perturbkit-wheel-")))
        digest = sha256_file(wheel)
        shipped = code_staging / wheel_folder_name(digest) / wheel.name
        shipped.parent.mkdir()
        shutil.copy2(wheel, shipped)
        (code_staging / DATASET_METADATA_FILE).write_text(json.dumps(code_metadata, indent=2) + "\n")
        script_text = render_script(spec, wheel, digest, code_metadata["id"])
        check_script_size(script_text)
        (staging / CODE_FILE).write_text(script_text)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        validate_metadata(metadata, staging)
        check_no_credentials(staging)
        check_no_credentials(code_staging)
    warnings = []
    packages = block_packages(spec)
    if packages and not dataset_sources:
        needs = "; ".join(f"{package} ({why})" for package, why in packages.items())
        warnings.append(f"the kernel needs {needs}, which the Kaggle image lacks, and no wheels dataset is attached: "
                        f"make kernel-deps, upload it, then build with --deps-dataset {user}/perturbkit-deps")
    return KernelBuild(
        folder=folder,
        script=folder / CODE_FILE,
        metadata=metadata,
        wheel=code_folder / wheel_folder_name(digest) / wheel.name,
        wheel_sha256=digest,
        code_folder=code_folder,
        code_dataset=code_metadata["id"],
        warnings=warnings,
    )


def describe_build(built: KernelBuild, spec, *, gpu: bool) -> str:
    """What ``perturbkit kernel build`` prints: the folders, each member's weight and fit, and the upload steps."""
    size = built.script.stat().st_size
    lines = [f"built {built.folder}/ ({built.metadata['id']}): {built.script.name} {size / 1000:.1f} KB (Kaggle's limit: 1 MB)",
             f"  code dataset {built.code_folder}/ ({built.code_dataset}): {built.wheel.name} sha256 {built.wheel_sha256[:12]}"]
    weights = spec.record.weights
    for position, (member, weight) in enumerate(zip(spec.members, weights.weights)):
        refit = ("refit" if member.config["cv"].get("refit") else "fold mean") if weights.used(position) else "weight 0: not fitted"
        lines.append(f"  {member.config['model']:<20} weight {weight:.4g}  ({refit})")
    lines.append(f"  scale {weights.scale:g}, clip {spec.record.clip}, datasets {built.metadata['dataset_sources']}, gpu {gpu}")
    return "\n".join(lines)


def describe_upload(built: KernelBuild) -> str:
    """The commands that upload the code dataset and push the kernel, printed after the build (and its warnings)."""
    return "\n".join([f"upload the code dataset (first time: kaggle datasets create -p {built.code_folder}), or a new version of it:",
                      f"  kaggle datasets version -p {built.code_folder} -m 'perturbkit {built.wheel_sha256[:12]}'",
                      f"then push the kernel: perturbkit kernel push --dir {built.folder} --follow --output"])
