"""What is installed in the server's environment: distributions, modules, requirements.

Used by the ``pipmaster`` and ``PackageManager`` stand-ins (which check, never install) and
by ``lollms-server personalities deps``. Version specifiers are checked with ``packaging``
when it is importable; without it a requirement is met by any installed version.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re

__all__ = [
    "distribution_for",
    "installed_version",
    "module_available",
    "requirement_met",
    "split_requirement",
]

# Modules whose distribution has another name (the common ones in the lollms zoo).
_DISTRIBUTIONS = {
    "cv2": "opencv-python",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "fitz": "pymupdf",
    "dotenv": "python-dotenv",
    "git": "gitpython",
    "serial": "pyserial",
    "Crypto": "pycryptodome",
    "dateutil": "python-dateutil",
    "magic": "python-magic",
    "googleapiclient": "google-api-python-client",
    "github": "pygithub",
    "youtube_transcript_api": "youtube-transcript-api",
}


def distribution_for(module: str) -> str:
    """The distribution that usually provides top-level ``module`` (pip's name for it)."""
    return _DISTRIBUTIONS.get(module, module)


def split_requirement(requirement: str) -> tuple[str, str]:
    """``"numpy>=1.2"`` -> ``("numpy", ">=1.2")`` (extras and markers dropped)."""
    text = requirement.split(";", 1)[0].strip()
    match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$", text)
    if match is None:
        return text, ""
    return match.group(1), match.group(3).strip()


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (its name in any spelling), or None."""
    name = split_requirement(distribution)[0]
    for candidate in dict.fromkeys((name, name.replace("_", "-"), name.replace("-", "_"))):
        try:
            return importlib.metadata.version(candidate)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
    return None


def _specifier_met(version: str, specifier: str) -> bool:
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
    except ImportError:  # packaging is not a dependency of the server
        return True
    try:
        return SpecifierSet(specifier).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True


def requirement_met(requirement: str, specifier: str | None = None) -> bool:
    """Whether ``requirement`` (``name``, ``name>=1.2``, or ``name`` and ``specifier``) is
    installed."""
    name, own = split_requirement(requirement)
    version = installed_version(name)
    if version is None:
        return False
    wanted = specifier or own
    return not wanted or _specifier_met(version, wanted)


def module_available(module: str) -> bool:
    """Whether ``import module`` can find it (its top-level package, without running it)."""
    top = module.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False
