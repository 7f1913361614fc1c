-- Retention (services/backend/retention.py): idempotency keys expire after
-- BACKEND_IDEMPOTENCY_KEY_TTL_S, published outbox events after BACKEND_OUTBOX_RETENTION_S.
-- These indexes keep each pruning round to the rows it deletes.
create index if not exists ride_idempotency_created_at on ride_idempotency (created_at);
create index if not exists ride_outbox_sent_at on ride_outbox (sent_at) where sent_at is not null;
