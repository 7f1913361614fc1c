"""Chunk search: reciprocal rank fusion and the one statement each retriever runs."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from services.domain.documents.store import (
    CANDIDATES,
    DIGIT_WEIGHT,
    ESSENTIAL_POSTINGS,
    MAX_LEXEME_SHARE,
    MIGRATIONS,
    MIN_TEXT_COVERAGE,
    RRF_K,
    TEXT_RRF_WEIGHT,
    TEXT_SEARCH_CONFIG,
    build_search,
    rrf,
)

VECTOR = "[0.1,0.2]"
QUESTION = "How long is the warranty on model K42?"


def test_rrf_sums_one_over_k_plus_rank_over_the_rankings() -> None:
    fused = rrf([[10, 20, 30], [30, 40]])
    scores = dict(fused)
    assert scores[30] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert scores[10] == pytest.approx(1 / (RRF_K + 1))
    assert scores[40] == pytest.approx(1 / (RRF_K + 2))
    # In both rankings beats first in one; equal scores go to the smaller id.
    assert [item for item, _ in fused] == [30, 10, 20, 40]
    assert [item for item, _ in rrf([[7], [3]])] == [3, 7]


def test_rrf_k_flattens_the_ranks() -> None:
    # A deep item found by both beats the top of one ranking only when k is large enough.
    rankings = [[1, 2, 3, 4, 5, 6, 9], [8, 2, 3, 4, 5, 6, 9]]
    assert rrf(rankings, k=60)[0][0] == 2
    assert rrf(rankings, k=0)[0][0] == 1


def test_rrf_of_one_ranking_keeps_its_order() -> None:
    assert [item for item, _ in rrf([[5, 3, 9]])] == [5, 3, 9]
    assert rrf([]) == []


def test_weighted_rrf_puts_the_text_rankings_first_ahead_of_the_vector_rankings_first() -> None:
    # Unweighted, the two first places tie (the smaller id wins); with the text ranking
    # weighted, its first is first, and a chunk in both rankings still beats both.
    vector, text = [7, 8], [9, 8]
    assert [item for item, _ in rrf([vector, [9]])] == [7, 9, 8]
    weighted = rrf([vector, [9]], weights=[1.0, TEXT_RRF_WEIGHT])
    assert [item for item, _ in weighted] == [9, 7, 8]
    assert dict(weighted)[9] == pytest.approx(TEXT_RRF_WEIGHT / (RRF_K + 1))
    assert rrf([vector, text], weights=[1.0, TEXT_RRF_WEIGHT])[0][0] == 8
    with pytest.raises(ValueError, match="one weight per ranking"):
        rrf([vector, text], weights=[1.0])


def _ctes(sql: str) -> list[str]:
    return re.findall(r"(?m)^(?:with )?(\w+) as \(", sql)


def test_hybrid_is_one_statement_of_ctes_two_rankings_and_their_fusion() -> None:
    sql, args = build_search("hybrid", vector=VECTOR, text=QUESTION, k=5)
    assert sql.startswith("with ") and ";" not in sql
    assert _ctes(sql) == [
        "vector_0",
        "vector_1",
        "vector_ranked",
        "text_query",
        "text_terms",
        "text_candidates",
        "text_pruned",
        "text_matches",
        "text_ranked",
        "fused",
    ]
    # Unfiltered: each source's own HNSW search, merged by distance.
    for source in ("product", "pdf"):  # a source without documents is skipped
        guard = f"exists (select from documents where source = '{source}')"
        assert f"where d.source = '{source}' and {guard}" in sql
    assert sql.count("order by c.embedding <=> $1::vector limit $2::int") == 2
    assert f"to_tsvector('{TEXT_SEARCH_CONFIG}', $3::text)" in sql
    # Document frequencies (migration 0003): common lexemes dropped, the others weighed by IDF
    # (a lexeme with a digit counting more), one GIN lookup per lexeme.
    assert "left join chunk_lexemes l on l.lexeme = q.lexeme" in sql
    assert f"where held <= {MAX_LEXEME_SHARE} * total" in sql
    assert f"case when q.lexeme ~ '[0-9]' then {DIGIT_WEIGHT} else 1 end" in sql
    assert "c.tsv @@ t.query" in sql
    # Max-score pruning: the rarest lexemes find the candidates; every term's postings are read
    # only when the candidates do not outweigh what the other chunks could weigh.
    assert f"where t.before + t.held <= {ESSENTIAL_POSTINGS}" in sql
    assert ")) >= 1 as exact" in sql  # hybrid fuses only the best weight
    assert "where not (select exact from text_pruned)" in sql
    # Fused, the text ranking keeps only the matches of the best weight, weighted in the RRF.
    assert "where m.weight = m.best" in sql
    # ... and only when the best holds MIN_TEXT_COVERAGE of the question's weight.
    assert f"m.best >= {MIN_TEXT_COVERAGE} * (select sum(idf) from text_terms)" in sql
    assert f"sum(weight / ({RRF_K} + rank)) as fused" in sql
    assert f"select id, rank, {TEXT_RRF_WEIGHT}::float8, " in sql
    assert "select id, rank, 1.0::float8, " in sql
    assert "limit $4::int" in sql.split("fused as (")[1]
    assert args == [VECTOR, CANDIDATES, QUESTION, 5]


def test_vector_only_has_no_text_ranking_and_fulltext_no_vector_ranking() -> None:
    vector_sql, vector_args = build_search("vector", vector=VECTOR, text=None, k=3)
    assert _ctes(vector_sql) == ["vector_0", "vector_1", "vector_ranked", "fused"]
    assert "tsv" not in vector_sql and vector_args == [VECTOR, CANDIDATES, 3]

    text_sql, text_args = build_search("fulltext", vector=VECTOR, text=QUESTION, k=3)
    assert _ctes(text_sql) == [
        "text_query",
        "text_terms",
        "text_candidates",
        "text_pruned",
        "text_matches",
        "text_ranked",
        "fused",
    ]
    assert "where m.weight = m.best" not in text_sql  # alone, every match is ranked
    assert "m.best >=" not in text_sql  # however little of the question it holds
    assert ")) >= $2::int as exact" in text_sql  # as many as the ranking's depth
    ranking = text_sql.split("\nselect c.id as chunk_id")[0]
    assert "<=>" not in ranking  # the vector only gives each hit its cosine score
    assert "1 - (c.embedding <=> $1::vector) as score" in text_sql
    assert text_args == [VECTOR, CANDIDATES, QUESTION, 3]


@pytest.mark.parametrize("retrieval", ["hybrid", "vector", "fulltext"])
def test_filters_apply_inside_every_ranking(retrieval: str) -> None:
    document = uuid.uuid4()
    sql, args = build_search(
        retrieval,  # type: ignore[arg-type]
        vector=VECTOR,
        text=QUESTION,
        k=5,
        source="pdf",
        document_id=document,
        candidates=20,
    )
    source = f"d.source = ${args.index('pdf') + 1}::text"
    doc = f"c.document_id = ${args.index(document) + 1}::uuid"
    rankings = [cte for cte in ("vector_0", "text_matches") if cte in _ctes(sql)]
    assert rankings
    for cte in rankings:
        body = sql.split(f"{cte} as (")[1].split("\n)")[0]
        assert source in body and doc in body, cte
    # A filter means one vector search, not one per source.
    assert "vector_1" not in sql and "d.source = 'product'" not in sql
    assert 20 in args


def test_only_the_source_filter_joins_documents_into_the_text_ranking() -> None:
    sql, _ = build_search("fulltext", vector=VECTOR, text=QUESTION, k=5, document_id=uuid.uuid4())
    assert "join documents" not in sql.split("text_matches as (")[1].split("\n)")[0]


@pytest.mark.parametrize("text", [None, "", "   "])
def test_text_retrievers_need_the_question(text: str | None) -> None:
    with pytest.raises(ValueError, match="needs the question"):
        build_search("hybrid", vector=VECTOR, text=text, k=5)
    with pytest.raises(ValueError, match="retrieval must be one of"):
        build_search("bm25", vector=VECTOR, text="x", k=5)  # type: ignore[arg-type]


def test_the_query_is_parsed_with_the_configuration_of_the_stored_tsvector() -> None:
    migration = (Path(MIGRATIONS) / "0002_chunks_full_text.sql").read_text()
    assert f"to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, text)" in migration


def test_every_write_to_chunks_keeps_the_document_frequencies() -> None:
    migration = (Path(MIGRATIONS) / "0003_chunk_lexemes.sql").read_text()
    for event in ("insert", "delete", "update", "truncate"):
        assert re.search(rf"after {event} on chunks", migration), event
    # The count of all chunks ('') is taken first in each trigger: the lock writers queue on.
    for function in ("chunk_lexemes_add", "chunk_lexemes_remove"):
        body = migration.split(f"function {function}()")[1].split("$$;")[0]
        first = body.split("begin", 1)[1].split(";")[0]
        assert "''" in first, function
