"""Registry of raw-data sources: one reader per raw format, found by name."""

from __future__ import annotations

from clickprompt.data.sources.base import Download, RawTable, Source, SourceSpec

_SOURCES: dict[str, Source] = {}


def register_source(source: Source) -> Source:
    if not source.name:
        raise ValueError("a source needs a name")
    if source.name in _SOURCES:
        raise ValueError(f"source {source.name!r} is already registered")
    _SOURCES[source.name] = source
    return source


def get_source(name: str) -> Source:
    if name not in _SOURCES:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(_SOURCES))}")
    return _SOURCES[name]


def list_sources() -> list[str]:
    return sorted(_SOURCES)


def source_for(name: str, schema=None) -> Source:
    """The source for `data prepare NAME [--schema FILE]`: a table source bound to FILE when one is
    given (NAME then names the prepared dataset, "table" meaning the schema's own name), else the
    registered source NAME."""
    if schema is not None:
        return TableSource.from_yaml(schema)
    return get_source(name)


from clickprompt.data.sources.movielens import MovieLens1M, MovieLens100K  # noqa: E402

register_source(MovieLens100K())
register_source(MovieLens1M())

__all__ = ["Download", "RawTable", "Source", "SourceSpec", "register_source", "get_source", "list_sources", "source_for"]

from clickprompt.data.sources.amazon import AmazonReviews  # noqa: E402
from clickprompt.data.sources.bookcrossing import BookCrossing  # noqa: E402
from clickprompt.data.sources.goodreads import GoodReads  # noqa: E402
from clickprompt.data.sources.table import TableSource  # noqa: E402

register_source(BookCrossing())
register_source(AmazonReviews())
register_source(GoodReads())
register_source(TableSource())
