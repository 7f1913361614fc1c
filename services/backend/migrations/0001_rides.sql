-- The taxi app: rides, their outbox, telemetry and the results the workers write.
create table if not exists rides (
    ride_id                  uuid primary key,
    created_at               timestamptz not null default now(),
    request_id               text,
    user_id                  text not null,
    pickup_datetime          timestamp not null,
    pickup_location_id       smallint not null,
    dropoff_location_id      smallint not null,
    trip_distance            real not null,
    passenger_count          smallint not null,
    payment_type             smallint not null,
    initial_duration_minutes real,
    initial_model_name       text,
    initial_model_version    text,
    initial_reason           text
);

-- Transactional outbox: written in the transaction of the ride (or telemetry), published to
-- JetStream by the relay (Nats-Msg-Id = event_id), then marked sent.
create table if not exists ride_outbox (
    seq        bigint generated always as identity primary key,
    event_id   uuid not null unique,
    ride_id    uuid not null references rides (ride_id),
    subject    text not null,
    payload    jsonb not null,
    created_at timestamptz not null default now(),
    sent_at    timestamptz
);
create index if not exists ride_outbox_unsent on ride_outbox (seq) where sent_at is null;

create table if not exists ride_telemetry (
    event_id         uuid primary key,
    ride_id          uuid not null references rides (ride_id),
    created_at       timestamptz not null default now(),
    elapsed_minutes  real not null,
    distance_covered real not null,
    speed_mph        real not null
);
create index if not exists ride_telemetry_ride on ride_telemetry (ride_id);

-- One row per (ride, kind, model version), written idempotently by the workers: a newer event
-- (higher outbox seq) replaces the value, a redelivered one changes nothing.
create table if not exists ride_results (
    ride_id       uuid not null references rides (ride_id),
    kind          text not null,
    model_name    text not null,
    model_version text not null,
    value         real not null,
    source_seq    bigint not null,
    event_id      uuid not null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (ride_id, kind, model_version)
);

-- Each committed result wakes the backend's Server-Sent Events streams (LISTEN ride_results).
create or replace function ride_results_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('ride_results', new.ride_id::text);
    return new;
end;
$$;
drop trigger if exists ride_results_notify on ride_results;
create trigger ride_results_notify after insert or update on ride_results
    for each row execute function ride_results_notify();
