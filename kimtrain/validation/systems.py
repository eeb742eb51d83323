"""The crystals validated: diamond Si and fcc Al (the shared data's systems), their starting cells
and the simulation sizes used for each property."""
from __future__ import annotations

from dataclasses import dataclass

from ase.build import bulk


@dataclass(frozen=True)
class System:
    name: str          # si | al
    symbol: str
    structure: str     # ASE crystal structure
    a_guess: float     # Å, the starting lattice constant (relaxed before every property)
    hot: float         # K, the "near melting" MD temperature
    vacancy_repeat: tuple  # repeats of the conventional cell for the vacancy (>= 64 atoms), smallest first
    md_repeat: int     # repeats of the conventional cell for MD (>= 64 atoms)

    def primitive(self):
        return bulk(self.symbol, self.structure, a=self.a_guess)

    def conventional(self, a: float | None = None):
        return bulk(self.symbol, self.structure, a=a or self.a_guess, cubic=True)

    @property
    def atoms_per_conventional(self) -> int:
        return len(self.conventional())

    @property
    def nearest_neighbour_factor(self) -> float:
        """d_nn / a: sqrt(3)/4 for diamond, 1/sqrt(2) for fcc."""
        return 3 ** 0.5 / 4 if self.structure == "diamond" else 2 ** -0.5


SYSTEMS = {
    "si": System("si", "Si", "diamond", 5.43, 1700.0, (2, 3), 2),   # 64 and 216 atoms; MD on 64
    "al": System("al", "Al", "fcc", 4.05, 1000.0, (3, 4), 3),       # 108 and 256 atoms; MD on 108
}


def system_for(species: list[str], given: str | None = None, who: str = "the potential") -> System:
    """The system named `given`, or the one whose element the run (or EIP) supports."""
    if given:
        if given not in SYSTEMS:
            raise ValueError(f"unknown system {given!r} (choose from {', '.join(SYSTEMS)})")
        if SYSTEMS[given].symbol not in species:
            raise ValueError(f"system {given} is {SYSTEMS[given].symbol}, which {who} does not support ({species})")
        return SYSTEMS[given]
    found = [s for s in SYSTEMS.values() if s.symbol in species]  # an EIP may support more elements
    if len(found) != 1:
        raise ValueError(f"{who}: no validation system for species {species} (validate knows {', '.join(SYSTEMS)}: "
                         "one element each)")
    return found[0]
