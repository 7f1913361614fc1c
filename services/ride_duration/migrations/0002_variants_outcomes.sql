-- Which variant of the routing table answered each prediction, for whom (the sticky key), and
-- the truth once the ride completed (POST /v1/outcomes), so MAE/RMSE can be had per variant.
alter table ride_duration_predictions add column if not exists variant text;
alter table ride_duration_predictions add column if not exists user_id text;

create table if not exists ride_duration_outcomes (
    prediction_id  uuid primary key,
    actual_minutes real not null,
    observed_at    timestamptz not null default now(),
    request_id     text
);
create index if not exists ride_duration_outcomes_observed_at
    on ride_duration_outcomes (observed_at);
