"""Map legacy columns to Cognito attributes: the build's second stage, after the sources.

- :mod:`~csvimport.mapping.spec`: the mapping file (TOML) -> a checked ``Mapping`` value.
- :mod:`~csvimport.mapping.transforms`: the attribute transforms (legacy -> Cognito spelling).
- :mod:`~csvimport.mapping.apply`: a ``Mapping`` applied to a chunk of source rows.
- :mod:`~csvimport.mapping.suggest`: the starter mapping ``csvimport map`` writes.
"""
