-- The routing table of every model service, versioned: one row per (service, version); the
-- newest version is the table in force. The primary key is the optimistic-concurrency check
-- (two writers based on the same version cannot both insert version + 1) and the audit trail.
create table if not exists model_routing (
    service     text not null,
    version     integer not null check (version >= 1),
    variants    jsonb not null,
    salt        text not null default '',
    comment     text,
    updated_at  timestamptz not null default now(),
    updated_by  text not null,
    primary key (service, version)
);
