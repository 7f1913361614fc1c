-- Batch scoring (`modelfleet score`): one row per run with its checkpoint, one row per scored
-- (run, source row, model). A chunk's results and the run's new checkpoint are written in ONE
-- transaction, and the checkpoint moves by compare-and-set on rows_done, so a resumed run
-- continues exactly after the last committed chunk: no row scored twice, none skipped.
create table if not exists score_runs (
    run_id            text primary key,
    source            text not null check (source in ('rides', 'file')),
    source_ref        text not null,          -- 'rides' or the file/folder path
    fingerprint       text not null,          -- sha256 of the file(s); 'rides' for rides
    models            text[] not null,
    rows_total        bigint not null,
    rows_done         bigint not null default 0,
    chunks_done       integer not null default 0,
    window_start      timestamptz,            -- rides: created_at > window_start
    cutoff            timestamptz,            -- rides: created_at <= cutoff
    cursor_created_at timestamptz,            -- rides: last scored (created_at, ride_id)
    cursor_ride_id    uuid,
    status            text not null check (status in ('running', 'done')),
    attempts          integer not null default 1,
    started_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    finished_at       timestamptz
);
create index if not exists score_runs_unfinished on score_runs (fingerprint) where status = 'running';

create table if not exists score_results (
    run_id        text not null references score_runs (run_id),
    row_key       text not null,              -- file: row number (0-based); rides: ride_id
    model_name    text not null,
    model_version text not null,
    value         real not null,
    scored_at     timestamptz not null default now(),
    primary key (run_id, row_key, model_name)
);
