-- API keys of machine clients (stored hashed, shown once) and the audit log of admin actions.
create table if not exists api_keys (
    key_id      text primary key,
    name        text not null,
    key_hash    text not null,
    scopes      text[] not null,
    created_at  timestamptz not null default now(),
    created_by  text not null,
    revoked_at  timestamptz
);

create table if not exists audit_log (
    id          bigserial primary key,
    at          timestamptz not null default now(),
    actor       text not null,
    action      text not null,
    target      text not null,
    before      jsonb,
    after       jsonb,
    request_id  text
);
create index if not exists audit_log_at on audit_log (at desc);
create index if not exists audit_log_target on audit_log (target, at desc);
