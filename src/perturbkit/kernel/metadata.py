"""kernel-metadata.json: written with every field explicit, validated the way the Kaggle client does.

Also the credential guard: a kernel folder holding anything that looks like a Kaggle credential
is refused before it is written or pushed. Offending files are named; their contents never are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from perturbkit.data.layout import COMPETITION
from perturbkit.errors import PerturbkitError

METADATA_FILE = "kernel-metadata.json"
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MIN_LENGTH, MAX_LENGTH = 5, 50
CREDENTIAL_FILE_NAMES = frozenset(
    {"kaggle.json", "access_token", "access_token.txt", "credentials.json", ".env", ".netrc", ".pypirc"}
)
CREDENTIAL_PATTERNS = (
    re.compile(r"""["']key["']\s*:\s*["'][A-Za-z0-9_\-]{16,}["']"""),  # kaggle.json's legacy API key
    re.compile(r"""["'](?:refresh|access)_token["']\s*:\s*["'][^"']{16,}["']"""),  # credentials.json
    re.compile(r"\bKGAT_[A-Za-z0-9]{16,}"),  # Kaggle API tokens
    re.compile(r"""\bKAGGLE_(?:KEY|API_TOKEN)\s*[=:]\s*["']?[A-Za-z0-9_\-]{16,}"""),
)


class KernelMetadataError(PerturbkitError, ValueError):
    """kernel-metadata.json that the Kaggle client (or this project's rules) would reject."""


class CredentialLeakError(PerturbkitError):
    """A kernel folder holds something that looks like a credential."""


def slugify(text: str) -> str:
    """Kaggle's slug of a title (python-slugify, as the client uses, when installed)."""
    try:
        from slugify import slugify as _slugify

        return _slugify(text)
    except ImportError:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def title_for_slug(slug: str) -> str:
    return " ".join(word.capitalize() for word in slug.split("-"))


def kernel_metadata(
    user: str,
    slug: str,
    *,
    title: str | None = None,
    code_file: str = "kernel.py",
    enable_gpu: bool = False,
    dataset_sources=(),
    kernel_sources=(),
    model_sources=(),
) -> dict:
    metadata = {
        "id": f"{user}/{slug}",
        "title": title or title_for_slug(slug),
        "code_file": code_file,
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": bool(enable_gpu),
        "enable_tpu": False,
        "enable_internet": False,
        "keywords": [],
        "competition_sources": [COMPETITION],
        "dataset_sources": list(dataset_sources),
        "kernel_sources": list(kernel_sources),
        "model_sources": list(model_sources),
    }
    validate_metadata(metadata)
    return metadata


def _source_list(metadata: dict, key: str) -> list[str]:
    value = metadata.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KernelMetadataError(f"{key} must be a list of strings, got {value!r}")
    return value


def validate_metadata(metadata: dict, folder: Path | None = None) -> None:
    """The checks ``kaggle kernels push`` makes, plus this project's: private, offline, the competition attached."""
    kernel_id = metadata.get("id")
    if not isinstance(kernel_id, str) or kernel_id.count("/") != 1:
        raise KernelMetadataError(f"id must be '<username>/<kernel-slug>', got {kernel_id!r}")
    user, slug = kernel_id.split("/")
    if not USER_PATTERN.match(user):
        raise KernelMetadataError(f"id {kernel_id!r}: username {user!r} must be letters, digits, '-', '_' or '.'")
    if not (MIN_LENGTH <= len(slug) <= MAX_LENGTH) or not SLUG_PATTERN.match(slug):
        raise KernelMetadataError(
            f"id {kernel_id!r}: the kernel slug must be {MIN_LENGTH}-{MAX_LENGTH} characters of lowercase letters, "
            "digits and single hyphens"
        )
    title = metadata.get("title")
    if not isinstance(title, str) or not (MIN_LENGTH <= len(title) <= MAX_LENGTH):
        raise KernelMetadataError(f"title must be {MIN_LENGTH}-{MAX_LENGTH} characters, got {title!r}")
    if slugify(title) != slug:
        raise KernelMetadataError(f"title {title!r} slugifies to {slugify(title)!r}, not to the kernel slug {slug!r}")
    code_file = metadata.get("code_file")
    if not isinstance(code_file, str) or not code_file or "/" in code_file or code_file.startswith("."):
        raise KernelMetadataError(f"code_file must be a file name in the kernel folder, got {code_file!r}")
    if folder is not None and not (Path(folder) / code_file).is_file():
        raise KernelMetadataError(f"{Path(folder) / code_file}: code_file not found")
    if metadata.get("language") not in ("python", "r", "rmarkdown"):
        raise KernelMetadataError(f"language must be python, r or rmarkdown, got {metadata.get('language')!r}")
    if metadata.get("kernel_type") not in ("script", "notebook"):
        raise KernelMetadataError(f"kernel_type must be script or notebook, got {metadata.get('kernel_type')!r}")
    for key in ("is_private", "enable_gpu", "enable_tpu", "enable_internet"):
        if key in metadata and not isinstance(metadata[key], bool):
            raise KernelMetadataError(f"{key} must be a JSON boolean (true/false), got {metadata[key]!r}")
    if metadata.get("enable_internet", True) is not False:
        raise KernelMetadataError("enable_internet must be false: the kernel runs offline")
    if metadata.get("is_private", True) is not True:
        raise KernelMetadataError("is_private must be true")
    if COMPETITION not in _source_list(metadata, "competition_sources"):
        raise KernelMetadataError(f"competition_sources must include {COMPETITION!r}")
    for source in _source_list(metadata, "dataset_sources"):
        parts = source.split("/")  # <owner>/<dataset-slug>[/<version>]: no spaces, '..' or other path parts
        if not (len(parts) in (2, 3) and USER_PATTERN.fullmatch(parts[0]) and SLUG_PATTERN.fullmatch(parts[1])
                and (len(parts) == 2 or parts[2].isdigit())):
            raise KernelMetadataError(f"dataset source {source!r} (--deps-dataset, --dataset-source) must be "
                                      "'<owner>/<dataset-slug>[/<version>]': a Kaggle username, a slug of lowercase letters, digits "
                                      "and single hyphens, a version number")
    for source in _source_list(metadata, "kernel_sources"):
        parts = source.split("/")
        if len(parts) not in (2, 3) or not all(parts) or len(parts[1]) < MIN_LENGTH:
            raise KernelMetadataError(f"kernel source {source!r} must be '<owner>/<kernel-slug>[/<version>]', slug >= 5 characters")
    for source in _source_list(metadata, "model_sources"):
        parts = source.split("/")
        if len(parts) != 5 or not all(parts) or not parts[4].isdigit():
            raise KernelMetadataError(f"model source {source!r} must be '<owner>/<model>/<framework>/<instance>/<version number>'")


def read_metadata(folder: Path | str) -> dict:
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise KernelMetadataError(f"{path}: not found (build the kernel first: perturbkit kernel build)")
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise KernelMetadataError(f"{path}: not JSON ({exc})") from exc
    try:
        validate_metadata(metadata, folder)
    except KernelMetadataError as exc:
        raise KernelMetadataError(f"{path}: {exc}") from None
    return metadata


def credential_findings(folder: Path | str) -> list[str]:
    """Paths (relative to ``folder``) that look like credentials, each with why; never their content."""
    from perturbkit.kaggle.auth import credential_values

    folder = Path(folder)
    secrets = credential_values()
    findings = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(folder)
        if path.name.lower() in CREDENTIAL_FILE_NAMES:
            findings.append(f"{relative} (a credential file name)")
            continue
        if path.is_symlink():
            findings.append(f"{relative} (a symbolic link)")
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        if any(pattern.search(text) for pattern in CREDENTIAL_PATTERNS):
            findings.append(f"{relative} (content looks like a Kaggle key or token)")
        elif any(secret in text for secret in secrets):
            findings.append(f"{relative} (contains a configured Kaggle credential)")
    return findings


def check_no_credentials(folder: Path | str) -> None:
    findings = credential_findings(folder)
    if findings:
        raise CredentialLeakError(
            f"{folder}: refusing a kernel folder with something that looks like a credential: " + "; ".join(findings)
        )
