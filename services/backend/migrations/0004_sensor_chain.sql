-- The chain of POST /v1/rides (services/backend/chain.py): whether the initial duration came
-- from the sensor-aware model (the chain fit the budget), shown again by GET and on a replay.
alter table rides add column if not exists initial_uses_sensor boolean not null default false;
