"""The radio network: the cell catalogue of each national operator.

A cell is named by its Cell Global Identity written as MCC-MNC-LAC-CI. Mediation rejects a
home-network CGI that is not in this catalogue (UNKNOWN_CELL); a CGI of a roaming partner's
network is accepted as roaming. The catalogue is deterministic: it is reference data, not
random per run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cdr_platform.lib.reference.numbering_plan import NATIONAL_OPERATORS
from cdr_platform.lib.schema import TECHNOLOGIES

REGIONS = ("Casablanca", "Rabat", "Marrakech", "Fes", "Tangier", "Agadir", "Oujda", "Laayoune")
CELLS_PER_OPERATOR = 40
_CATALOGUE_SEED = 604  # fixed: the catalogue is reference data


@dataclass(frozen=True)
class Cell:
    cell_id: str  # MCC-MNC-LAC-CI
    operator_id: str
    region: str
    lac: int
    ci: int
    max_technology: str

    @property
    def network(self) -> str:
        """The cell's network, MCC-MNC: the first half of its CGI."""
        return self.cell_id.rsplit("-", 2)[0]


def cell_global_id(mcc: str, mnc: str, lac: int, ci: int) -> str:
    return f"{mcc}-{mnc}-{lac:05d}-{ci:05d}"


def _build_catalogue() -> tuple[Cell, ...]:
    rng = random.Random(_CATALOGUE_SEED)
    cells = []
    for op in NATIONAL_OPERATORS:
        for i in range(CELLS_PER_OPERATOR):
            region_index = i % len(REGIONS)
            lac = 1000 + 100 * region_index
            ci = 10 + i
            tech = rng.choices(TECHNOLOGIES, weights=(1, 2, 5, 2))[0]
            cells.append(
                Cell(cell_global_id(op.mcc, op.mnc, lac, ci), op.operator_id, REGIONS[region_index], lac, ci, tech)
            )
    return tuple(cells)


CELL_CATALOGUE: tuple[Cell, ...] = _build_catalogue()
CELLS_BY_ID = {c.cell_id: c for c in CELL_CATALOGUE}


def cells_of(operator_id: str) -> tuple[Cell, ...]:
    return tuple(c for c in CELL_CATALOGUE if c.operator_id == operator_id)
