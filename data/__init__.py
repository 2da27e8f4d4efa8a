"""The data layer: what an offender assessment is and how data is checked.

Modules: :mod:`data.schema` (the single source of truth for fields, types,
ranges and the HTTP contract), :mod:`data.validation` (checks a table against
it), :mod:`data.loaders` (reads and writes CSV / Parquet), :mod:`data.adapters`
(maps another system's columns onto the schema), :mod:`data.synthetic` (the
synthetic IOM cohort that lets the whole pipeline run with no outside data),
:mod:`data.shifts` (a later, shifted cohort and its deployment records),
:mod:`data.outcomes` (outcomes of scored people, and which may be counted),
:mod:`data.decisions` (practitioners' decisions on served scores),
:mod:`data.errors` (the base error and the errors of data). The module map is
``docs/architecture.md``.
"""
