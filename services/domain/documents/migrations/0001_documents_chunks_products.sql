-- Documents (products and PDFs), their chunks with all-MiniLM-L6-v2 embeddings (pgvector), and
-- the product catalogue for SQL facts. Written by ingestion (services/domain/documents/ingest.py),
-- read by the chatbot. Applied by every process that ingests or retrieves (service "documents").
create extension if not exists vector;

create table if not exists documents (
    id           uuid primary key,
    source       text not null check (source in ('product', 'pdf')),
    external_id  text not null,             -- product id, or the PDF's file name
    title        text not null,
    content_hash text not null,             -- sha256 of what the chunks were made from
    page_count   integer,                   -- PDFs only
    status       text not null default 'processing'
                 check (status in ('processing', 'ready', 'failed')),
    error        text,
    chunk_count  integer not null default 0,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    unique (source, external_id)
);

create table if not exists chunks (
    id          bigserial primary key,
    document_id uuid not null references documents (id) on delete cascade,
    page        integer,                    -- 1-based PDF page; null for products
    chunk_index integer not null,
    char_start  integer not null,           -- offsets into the page's (or product's) text
    char_end    integer not null,
    text        text not null,
    embedding   vector(384) not null,
    unique (document_id, chunk_index)
);

create index if not exists chunks_embedding_hnsw
    on chunks using hnsw (embedding vector_cosine_ops);

create table if not exists products (
    product_id    text primary key,
    title         text not null,
    description   text not null default '',
    brand         text not null default '',
    price         numeric(12, 2) not null check (price >= 0),
    currency      text not null default 'USD',
    category      text not null,            -- the leaf, e.g. 'Laptops'
    category_path text not null,            -- e.g. 'Electronics > Computers > Laptops'
    updated_at    timestamptz not null default now()
);

create index if not exists products_category on products (category, price);
create index if not exists products_brand on products (lower(brand));
