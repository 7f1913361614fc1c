-- Idempotency-Key of POST /v1/rides: written in the transaction of the ride, so a key maps to
-- exactly one ride; a retry with the same key and body replays it, another body is refused.
-- The foreign key is checked at commit, so the key row can be claimed before the ride row.
create table if not exists ride_idempotency (
    idempotency_key text primary key,
    request_hash    text not null,
    ride_id         uuid not null references rides (ride_id) deferrable initially deferred,
    created_at      timestamptz not null default now()
);

-- What the fan-out of POST /v1/rides got from the location and sensor services (each
-- {"data": object|null, "reason": text|null}), shown again by GET and on a replay.
alter table rides add column if not exists downstream jsonb;
