"""Properties that follow from the predicted moduli (isotropic formulas), for ``zoo screen``.

Inputs are the Voigt-Reuss-Hill shear modulus G and bulk modulus K in GPa, and of the structure
its density ρ (g/cm³), atoms per cell n and cell volume V (Å³). Every column is described in
:data:`DERIVED_COLUMNS` (units, formula, source), which the data card prints. Arrays broadcast:
with ensemble members, G and K are ``(M, n)`` and so is every result.

A value outside the range where its formula means anything is NaN with the reason in a
``*_note`` column, never a silent number (Chen's hardness fit is negative for soft, ductile
crystals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PLANCK = 6.62607015e-34  # J s (exact, SI 2019)
BOLTZMANN = 1.380649e-23  # J/K (exact, SI 2019)
PUGH_DUCTILE_ABOVE = 1.75
"""Pugh's ratio K/G above which a crystal is called ductile (Pugh, Philos. Mag. 45, 823, 1954)."""
CHEN_MIN_K2G = 1.5 ** (1 / 0.585)
"""k²G (GPa) below which Chen's fit 2(k²G)^0.585 − 3 is not positive (about 2.0 GPa)."""


@dataclass(frozen=True)
class Column:
    """One derived column: its name, units, formula and source (for the data card)."""

    name: str
    units: str
    formula: str
    source: str


_ISOTROPIC = "isotropic linear elasticity (e.g. Landau & Lifshitz, Theory of Elasticity, §4-5)"
_ANDERSON = "Anderson, J. Phys. Chem. Solids 24, 909 (1963)"
DERIVED_COLUMNS = [
    Column("youngs_gpa", "GPa", "E = 9KG / (3K + G)", _ISOTROPIC),
    Column("poisson_ratio", "1", "ν = (3K − 2G) / (2(3K + G))", _ISOTROPIC),
    Column("pugh_ratio", "1", "K / G", "Pugh, Philos. Mag. 45, 823 (1954)"),
    Column(
        "ductility",
        "label",
        f"'ductile' if K/G > {PUGH_DUCTILE_ABOVE} else 'brittle'",
        "Pugh, Philos. Mag. 45, 823 (1954)",
    ),
    Column(
        "hardness_vickers_gpa",
        "GPa",
        "H_V = 2 (k² G)^0.585 − 3, k = G/K; NaN where it is not positive (k²G < 2.0 GPa)",
        "Chen, Niu, Li & Li, Intermetallics 19, 1275 (2011)",
    ),
    Column("velocity_transverse_m_s", "m/s", "v_t = (G/ρ)^½", _ANDERSON),
    Column("velocity_longitudinal_m_s", "m/s", "v_l = ((K + 4G/3)/ρ)^½", _ANDERSON),
    Column("velocity_mean_m_s", "m/s", "v_m = [(2/v_t³ + 1/v_l³)/3]^(−1/3)", _ANDERSON),
    Column(
        "debye_temperature_k", "K", "θ_D = (h/k_B) (3n / (4πV))^(1/3) v_m, n atoms in V", _ANDERSON
    ),
]
NUMERIC = [c.name for c in DERIVED_COLUMNS if c.units != "label"]
"""The derived columns that are numbers (an ensemble gives each a ``*_std``)."""


def derive(
    shear_gpa: np.ndarray,
    bulk_gpa: np.ndarray,
    density_g_cm3: np.ndarray,
    n_sites: np.ndarray,
    volume_a3: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every numeric column of :data:`DERIVED_COLUMNS` from G and K (GPa, shape ``(..., n)``)
    and the structures' density, atom count and volume (``(n,)``)."""
    g, k = np.asarray(shear_gpa, dtype=float), np.asarray(bulk_gpa, dtype=float)
    rho = np.asarray(density_g_cm3, dtype=float) * 1e3  # kg/m³
    with np.errstate(invalid="ignore", divide="ignore"):
        k2g = (g / k) ** 2 * g
        hardness = np.where(k2g > CHEN_MIN_K2G, 2.0 * np.abs(k2g) ** 0.585 - 3.0, np.nan)
        v_t = np.sqrt(g * 1e9 / rho)
        v_l = np.sqrt((k + 4.0 * g / 3.0) * 1e9 / rho)
        v_m = ((2.0 / v_t**3 + 1.0 / v_l**3) / 3.0) ** (-1.0 / 3.0)
        atoms_per_m3 = np.asarray(n_sites, dtype=float) / (np.asarray(volume_a3) * 1e-30)
        debye = PLANCK / BOLTZMANN * (3.0 * atoms_per_m3 / (4.0 * np.pi)) ** (1.0 / 3.0) * v_m
        return {
            "youngs_gpa": 9.0 * k * g / (3.0 * k + g),
            "poisson_ratio": (3.0 * k - 2.0 * g) / (2.0 * (3.0 * k + g)),
            "pugh_ratio": k / g,
            "hardness_vickers_gpa": hardness,
            "velocity_transverse_m_s": v_t,
            "velocity_longitudinal_m_s": v_l,
            "velocity_mean_m_s": v_m,
            "debye_temperature_k": debye,
        }


def ductility(pugh_ratio: np.ndarray) -> np.ndarray:
    """'ductile' where K/G > :data:`PUGH_DUCTILE_ABOVE`, 'brittle' otherwise, '' for NaN."""
    ratio = np.asarray(pugh_ratio, dtype=float)
    labels = np.where(ratio > PUGH_DUCTILE_ABOVE, "ductile", "brittle").astype(object)
    labels[~np.isfinite(ratio)] = ""
    return labels


def hardness_note(shear_gpa: np.ndarray, bulk_gpa: np.ndarray) -> np.ndarray:
    """Why the hardness is NaN for each structure ('' where it has a value)."""
    g, k = np.asarray(shear_gpa, dtype=float), np.asarray(bulk_gpa, dtype=float)
    k2g = (g / k) ** 2 * g
    notes = np.full(g.shape, "", dtype=object)
    low = np.isfinite(k2g) & (k2g <= CHEN_MIN_K2G)
    notes[low] = [
        f"outside Chen's fit: k²G = {value:.3g} GPa gives H_V <= 0 (soft or ductile)"
        for value in k2g[low]
    ]
    return notes
