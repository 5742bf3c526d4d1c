"""The import file's columns for a pool: a mapped frame completed into the pool's rows.

A mapping sets some of the pool's columns; an import file carries every one of them
(facts §2). This module names those columns (the pool's CSV header less ``password_hash``,
which only a hash job's files carry), fills the ones the mapping leaves out, and refuses a
mapping that sets an attribute the pool does not have. The build completes each mapped
chunk here (:mod:`csvimport.build.chunkbuild`), the single-user mapper each mapped user
(:mod:`csvimport.build.mapping.user`), so both write a user alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pandas as pd

from csvimport.build.mapping.spec import PASSWORD_HASH, Mapping
from csvimport.cognito_csv import constant_strings
from csvimport.errors import ConfigError
from csvimport.pool import PoolSnapshot

HASH_COLUMN: Final = PASSWORD_HASH
# What an unmapped cognito:mfa_enabled is written as: explicit and consistent with the
# pool's MFA setting, which the facts file calls the safest choice (§2).
MFA_DEFAULT: Final = {"ON": "true", "OFF": "false", "OPTIONAL": "false"}


@dataclass(frozen=True)
class ImportColumns:
    """The columns an import file for one pool carries, and what an unmapped one holds."""

    names: list[str]  # the pool's header, in its order, without HASH_COLUMN
    defaults: dict[str, str]  # column -> the value written when the mapping does not set it

    @classmethod
    def of(cls, snapshot: PoolSnapshot) -> ImportColumns:
        """Return the import columns of the pool ``snapshot`` describes."""
        return cls(
            names=[c for c in snapshot.header if c != HASH_COLUMN],
            defaults={"cognito:mfa_enabled": MFA_DEFAULT.get(snapshot.mfa, "false")},
        )

    def complete(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Add to ``frame`` (in place) every import column it lacks; return it.

        An added column holds its default for every row, ``""`` for most columns.
        """
        for column in self.names:
            if column not in frame.columns:
                frame[column] = constant_strings(self.defaults.get(column, ""), frame.index)
        return frame


def check_attributes(mapping: Mapping, snapshot: PoolSnapshot) -> None:
    """Raise ConfigError naming the attributes ``mapping`` sets that the pool lacks."""
    unknown = [a for a in mapping.attributes() if a not in (*snapshot.header, HASH_COLUMN)]
    if unknown:
        raise ConfigError(
            f"the mapping sets attributes the pool does not have: {', '.join(unknown)}",
            hint=f"The pool's columns are: {', '.join(snapshot.header)}. Fix {mapping.origin}.",
        )
