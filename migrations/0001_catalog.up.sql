-- deltaview's catalog in the target database. Safe to run again (see Up).

-- One row per replication stream (slot): how far the target reflects it.
CREATE TABLE IF NOT EXISTS deltaview.streams (
    slot        text PRIMARY KEY,
    publication text NOT NULL,
    -- Every source transaction that ended at or before this position is
    -- reflected in the stream's running views.
    applied_lsn pg_lsn,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per view definition deltaview maintains (or failed to).
CREATE TABLE IF NOT EXISTS deltaview.maintained (
    name        text PRIMARY KEY,          -- as written in the definition
    id          integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    slot        text NOT NULL,
    target      text,                      -- quoted, schema-qualified result table
    state_table text,                      -- quoted state table, if any
    created_target boolean NOT NULL DEFAULT false,
    file        text,
    line        integer,
    definition  text,
    fingerprint text,
    strategy    text,
    status      text NOT NULL,
    error       text,
    -- Only meaningful while not running; a running view follows its stream.
    applied_lsn pg_lsn,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE VIEW deltaview.views AS
SELECT m.name,
       m.status,
       m.error,
       CASE WHEN m.status = 'running' THEN s.applied_lsn ELSE m.applied_lsn END AS applied_lsn,
       m.target,
       m.strategy,
       m.file,
       m.line,
       m.slot,
       m.updated_at
FROM deltaview.maintained m
LEFT JOIN deltaview.streams s ON s.slot = m.slot;
