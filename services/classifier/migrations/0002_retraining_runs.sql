-- Retraining runs started by the classifier (an Alertmanager webhook or by hand), one row each.
-- status: queued (row written, job being started), running (the job picked it up), succeeded
-- (a new version serves), rejected (the candidate failed the quality gate), failed.
-- The partial unique index is the lock: at most one queued/running run per model, across every
-- replica of the classifier.
create table if not exists classifier_retraining_runs (
    run_id          uuid primary key,
    model_name      text not null,
    status          text not null
                    check (status in ('queued', 'running', 'succeeded', 'rejected', 'failed')),
    reason          text not null,
    trigger         text not null,
    alert           jsonb,
    job_name        text,
    serving_version text,
    new_version     text,
    metrics         jsonb,
    error           text,
    created_at      timestamptz not null default now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz not null default now()
);
create unique index if not exists classifier_retraining_runs_one_active
    on classifier_retraining_runs (model_name) where status in ('queued', 'running');
create index if not exists classifier_retraining_runs_created_at
    on classifier_retraining_runs (created_at);
