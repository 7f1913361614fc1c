-- Document frequencies of the full-text lexemes (decision 51): how many chunks hold each lexeme
-- of `chunks.tsv`, and under the lexeme '' (never a lexeme) how many chunks there are. The
-- search reads it to drop the lexemes held by too many chunks from its OR query and to weight
-- the others by their IDF (store.build_search).
--
-- Kept by statement-level triggers on `chunks` with transition tables, so it changes in the
-- transaction that writes the chunks whatever the write path (replace_chunks, the bench's COPY,
-- a document deleted with its chunks by the cascade). Each trigger counts the chunks row ('')
-- first: a transaction that changes any count holds that row's lock until it commits, so
-- concurrent writers of chunks queue there instead of deadlocking on lexeme rows taken in
-- different orders by their several statements.
lock table chunks in share row exclusive mode;  -- no chunk written while the counts are made

create table if not exists chunk_lexemes (
    lexeme text primary key,
    chunks integer not null                 -- chunks whose tsv holds the lexeme ('' = all chunks)
);

insert into chunk_lexemes (lexeme, chunks)
select '', count(*) from chunks
on conflict (lexeme) do update set chunks = excluded.chunks;

insert into chunk_lexemes (lexeme, chunks)
select word, ndoc from ts_stat('select tsv from chunks')
on conflict (lexeme) do update set chunks = excluded.chunks;

create or replace function chunk_lexemes_add() returns trigger language plpgsql as $$
begin
    insert into chunk_lexemes as t (lexeme, chunks)
    select '', count(*) from added
    on conflict (lexeme) do update set chunks = t.chunks + excluded.chunks;
    insert into chunk_lexemes as t (lexeme, chunks)
    select lexeme, count(*) from added, unnest(tsvector_to_array(added.tsv)) as lexeme
    group by lexeme
    on conflict (lexeme) do update set chunks = t.chunks + excluded.chunks;
    return null;
end
$$;

create or replace function chunk_lexemes_remove() returns trigger language plpgsql as $$
begin
    update chunk_lexemes set chunks = chunks - (select count(*) from removed) where lexeme = '';
    update chunk_lexemes t set chunks = t.chunks - gone.chunks
    from (
        select lexeme, count(*) as chunks
        from removed, unnest(tsvector_to_array(removed.tsv)) as lexeme
        group by lexeme
    ) gone
    where t.lexeme = gone.lexeme;
    return null;
end
$$;

create or replace function chunk_lexemes_clear() returns trigger language plpgsql as $$
begin
    update chunk_lexemes set chunks = 0;
    return null;
end
$$;

drop trigger if exists chunk_lexemes_insert on chunks;
create trigger chunk_lexemes_insert after insert on chunks
    referencing new table as added
    for each statement execute function chunk_lexemes_add();

drop trigger if exists chunk_lexemes_delete on chunks;
create trigger chunk_lexemes_delete after delete on chunks
    referencing old table as removed
    for each statement execute function chunk_lexemes_remove();

-- An update (chunks are replaced, not updated, today) counts as the old rows out, the new in.
drop trigger if exists chunk_lexemes_update_old on chunks;
create trigger chunk_lexemes_update_old after update on chunks
    referencing old table as removed
    for each statement execute function chunk_lexemes_remove();

drop trigger if exists chunk_lexemes_update_new on chunks;
create trigger chunk_lexemes_update_new after update on chunks
    referencing new table as added
    for each statement execute function chunk_lexemes_add();

drop trigger if exists chunk_lexemes_truncate on chunks;
create trigger chunk_lexemes_truncate after truncate on chunks
    for each statement execute function chunk_lexemes_clear();
