"""``perturbkit kernel build``: kernels/<slug>/ with kernel-metadata.json and one self-contained script.

The script embeds the perturbkit wheel (``pip wheel --no-deps`` of this project) as base64 and
the pipeline spec as JSON; see ``script_template.py`` for what it does at run time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from importlib import resources
from pathlib import Path

from perturbkit.errors import PerturbkitError
from perturbkit.kernel.metadata import METADATA_FILE, check_no_credentials, kernel_metadata, validate_metadata
from perturbkit.kernel.pipeline import validate_spec

DEFAULT_SLUG = "perturbkit-submission"
CODE_FILE = "kernel.py"
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in")


class KernelBuildError(PerturbkitError):
    pass


@dataclass(frozen=True)
class KernelBuild:
    folder: Path
    script: Path
    metadata: dict
    wheel: Path
    wheel_sha256: str


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
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise KernelBuildError(f"pip wheel failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    wheels = sorted(out_dir.glob("perturbkit-*.whl"))
    if len(wheels) != 1:
        raise KernelBuildError(f"{out_dir}: expected one perturbkit wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines without extras-only ones."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    return [r for r in message.get_all("Requires-Dist") or [] if "extra ==" not in r]


def _summary(spec: dict) -> str:
    members = ", ".join(f"{m['config']['model']} x {m['weight']:.4g}" for m in spec["members"])
    extra = f", scale {spec.get('scale', 1.0):g}" + (", clipped to training range" if spec.get("clip") else "")
    return f"{spec.get('method', 'mean')} of [{members}]{extra} (from {spec.get('source', '?')})"


def render_script(spec: dict, wheel: Path) -> str:
    """The kernel script: the template with the wheel, its requirements and the spec filled in."""
    template = resources.files("perturbkit.kernel").joinpath("script_template.py").read_text()
    data = wheel.read_bytes()
    encoded = "\n".join(textwrap.wrap(base64.b64encode(data).decode("ascii"), 100))
    replacements = {
        '"__PERTURBKIT_WHEEL_NAME__"': repr(wheel.name),
        '"__PERTURBKIT_WHEEL_SHA256__"': repr(hashlib.sha256(data).hexdigest()),
        '"__PERTURBKIT_REQUIREMENTS__"': repr(json.dumps(wheel_requirements(wheel))),
        '"__PERTURBKIT_SPEC__"': repr(json.dumps(spec, sort_keys=True)),
        "__PERTURBKIT_SUMMARY__": _summary(spec).replace('"""', "'''"),
        "__PERTURBKIT_WHEEL_B64__": encoded,
    }
    for placeholder, value in replacements.items():
        if template.count(placeholder) != 1:
            raise KernelBuildError(f"script template: placeholder {placeholder} found {template.count(placeholder)} times")
        template = template.replace(placeholder, value)
    return template


def embedded_wheel(script_text: str) -> bytes:
    """The wheel bytes embedded in a kernel script (for checks and tests)."""
    encoded = script_text.split('WHEEL_B64 = """', 1)[1].split('"""', 1)[0]
    return base64.b64decode("".join(encoded.split()))


def build_kernel(
    spec: dict,
    *,
    user: str,
    slug: str = DEFAULT_SLUG,
    out_root: Path | str = "kernels",
    title: str | None = None,
    enable_gpu: bool = False,
    dataset_sources=(),
    wheel: Path | None = None,
    wheel_dir: Path | str | None = None,
) -> KernelBuild:
    """Write ``<out_root>/<slug>/`` (kernel-metadata.json + kernel.py), replacing an older build.

    Metadata and spec are validated and the folder is checked for credentials before it
    replaces anything; a failure leaves the previous build as it was.
    """
    validate_spec(spec)
    metadata = kernel_metadata(user, slug, title=title, code_file=CODE_FILE, enable_gpu=enable_gpu, dataset_sources=dataset_sources)
    out_root = Path(out_root)
    if wheel is None:
        wheel = build_wheel(wheel_dir or Path(tempfile.mkdtemp(prefix="perturbkit-wheel-")))
    script_text = render_script(spec, wheel)
    folder = out_root / slug
    out_root.mkdir(parents=True, exist_ok=True)
    staging = out_root / f".{slug}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (staging / CODE_FILE).write_text(script_text)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        validate_metadata(metadata, staging)
        check_no_credentials(staging)
        if embedded_wheel(script_text) != wheel.read_bytes():
            raise KernelBuildError("the script's embedded wheel does not decode to the built wheel")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return KernelBuild(
        folder=folder,
        script=folder / CODE_FILE,
        metadata=metadata,
        wheel=wheel,
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
    )
