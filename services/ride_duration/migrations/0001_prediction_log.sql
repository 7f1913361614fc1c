-- Every prediction the service made, written in the background (see buffered_writer.py).
create table if not exists ride_duration_predictions (
    prediction_id       uuid primary key,
    created_at          timestamptz not null default now(),
    request_id          text,
    model_name          text not null,
    model_version       text not null,
    pickup_datetime     timestamp not null,
    pickup_location_id  smallint not null,
    dropoff_location_id smallint not null,
    trip_distance       real not null,
    passenger_count     smallint not null,
    duration_minutes    real not null
);
create index if not exists ride_duration_predictions_created_at
    on ride_duration_predictions (created_at);
