"""Map legacy columns to Cognito attributes: the build's stage after reading the source.

- :mod:`~csvimport.build.mapping.spec`: the mapping file (TOML) -> a checked ``Mapping`` value.
- :mod:`~csvimport.build.mapping.transforms`: the attribute transforms (legacy -> Cognito spelling).
- :mod:`~csvimport.build.mapping.apply`: a ``Mapping`` applied to a chunk of source rows.
- :mod:`~csvimport.build.mapping.columns`: the import file's columns for a pool, and their defaults.
- :mod:`~csvimport.build.mapping.user`: one legacy user mapped and validated, as the build would.
- :mod:`~csvimport.build.mapping.suggest`: the starter mapping ``csvimport map`` writes.
"""
