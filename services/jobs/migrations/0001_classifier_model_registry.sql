-- The classifier's model registry: one row per retraining run (version, metrics, data window,
-- status). status: rejected (failed the quality gate, nothing written), loading, serving,
-- retired (replaced by a newer serving version), failed (Triton refused the load; removed).
create table if not exists classifier_model_versions (
    run_id          uuid primary key,
    model_name      text not null,
    model_version   text,
    status          text not null
                    check (status in ('rejected', 'loading', 'serving', 'retired', 'failed')),
    candidate_macro_f1 real not null,
    serving_version text,
    serving_macro_f1 real,
    metrics         jsonb not null,
    data_window     jsonb not null,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create unique index if not exists classifier_model_versions_version
    on classifier_model_versions (model_name, model_version) where model_version is not null;
