-- Full-text search beside the vector search (hybrid retrieval, decision 51): each chunk's text
-- as a tsvector of the 'english' configuration (stop words dropped, words stemmed; numbers and
-- codes such as "K42", "3.4" or "-4410" kept as they are), generated from the text so every
-- write path fills it, and a GIN index for `tsv @@ query`. The search parses the question with
-- the same configuration (store.TEXT_SEARCH_CONFIG).
alter table chunks
    add column if not exists tsv tsvector
    generated always as (to_tsvector('english'::regconfig, text)) stored;

create index if not exists chunks_tsv_gin on chunks using gin (tsv);
