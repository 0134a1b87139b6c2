"""Versions of the packages a saved model depends on."""

from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("zoo", "torch", "dgl", "pymatgen", "numpy")


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
