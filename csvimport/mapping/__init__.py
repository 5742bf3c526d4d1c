"""Map legacy columns to Cognito attributes: the build's stage after reading the source.

- :mod:`~csvimport.mapping.spec`: the mapping file (TOML) -> a checked ``Mapping`` value.
- :mod:`~csvimport.mapping.transforms`: the attribute transforms (legacy -> Cognito spelling).
- :mod:`~csvimport.mapping.apply`: a ``Mapping`` applied to a chunk of source rows.
- :mod:`~csvimport.mapping.columns`: the import file's columns for a pool, and their defaults.
- :mod:`~csvimport.mapping.user`: one legacy user mapped and validated, as the build would.
- :mod:`~csvimport.mapping.suggest`: the starter mapping ``csvimport map`` writes.
"""
