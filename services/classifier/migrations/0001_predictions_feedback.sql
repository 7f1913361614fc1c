-- Every classification (written in the request's transaction, so feedback can find it at once)
-- and the labelled feedback on it (one row per prediction; a repeat replaces the label).
create table if not exists classifier_predictions (
    prediction_id      uuid primary key,
    created_at         timestamptz not null default now(),
    request_id         text,
    model_name         text not null,
    model_version      text not null,
    title              text not null,
    description        text not null,
    has_image          boolean not null,
    category           text not null,
    probability        real not null,
    top_k              jsonb not null
);
create index if not exists classifier_predictions_created_at
    on classifier_predictions (created_at);

create table if not exists classifier_feedback (
    prediction_id      uuid primary key
                       references classifier_predictions (prediction_id) on delete cascade,
    true_category      text not null,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    request_id         text
);
create index if not exists classifier_feedback_updated_at
    on classifier_feedback (updated_at);
