-- The chatbot's own tables: conversations and their turns (each answer with its citations).
-- Documents (with their ingestion status), chunks and products belong to
-- services/domain/documents (service "documents").
create table if not exists chat_conversations (
    id         uuid primary key,
    user_id    text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table if not exists chat_messages (
    id              bigserial primary key,
    conversation_id uuid not null references chat_conversations (id) on delete cascade,
    role            text not null check (role in ('user', 'assistant')),
    content         text not null,
    citations       jsonb not null default '[]'::jsonb,
    answered_by     text,                    -- facts | retrieval | cache (assistant turns)
    request_id      text,
    created_at      timestamptz not null default now()
);

create index if not exists chat_messages_conversation on chat_messages (conversation_id, id);
