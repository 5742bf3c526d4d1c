"""``csvimport assess``: profile the legacy users before the import and propose the pool.

``profile`` streams the source once into an :class:`~csvimport.assess.model.Assessment`
(columns, duplicates, password census); ``propose`` turns it into a proposed pool (a
CreateUserPool spec, a CloudFormation template, a starter mapping) and a strategy; the
assessment folder holds ``assessment.json`` and one self-contained HTML page.
"""
