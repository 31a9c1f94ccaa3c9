-- Migration 0007 (issue #17): each stream dataset's committed offset, advanced in the load's own
-- transaction with the rows it produced (README, "stream"), and the message id of a
-- quarantined event.
CREATE TABLE wharf.stream_offsets (
    dataset_id  text        NOT NULL,
    partition   integer     NOT NULL DEFAULT 0 CHECK (partition >= 0),
    broker      text        NOT NULL,
    stream      text        NOT NULL,
    consumer    text        NOT NULL,
    last_id     text        NOT NULL CHECK (last_id ~ '^[0-9]+(-[0-9]+)?$'),
    run_id      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset_id, partition)
);
COMMENT ON TABLE wharf.stream_offsets IS 'Stream sources: the last event each dataset has published, per partition of its stream (NATS and Redis streams have one, 0). Written in the load''s own transaction with the rows, never backwards: the next run reads the events after it. The truth of what is loaded; the broker''s consumer is acknowledged from it after the commit.';
COMMENT ON COLUMN wharf.stream_offsets.partition IS 'The stream''s partition (Kafka''s); 0 for NATS and Redis streams.';
COMMENT ON COLUMN wharf.stream_offsets.broker IS 'nats or redis, as the YAML said at the load.';
COMMENT ON COLUMN wharf.stream_offsets.stream IS 'The JetStream stream or Redis stream key the offset belongs to: a YAML naming another refuses to run rather than read the other stream from this offset.';
COMMENT ON COLUMN wharf.stream_offsets.consumer IS 'The durable consumer (NATS) or consumer group (Redis) acknowledged after each load.';
COMMENT ON COLUMN wharf.stream_offsets.last_id IS 'The last event read and published: a JetStream stream sequence (42) or a Redis entry id (1700000000000-0); compared as numbers, part by part.';
COMMENT ON COLUMN wharf.stream_offsets.run_id IS 'The Airflow run whose load set it.';

ALTER TABLE wharf.quarantine ADD COLUMN message_id text;
COMMENT ON COLUMN wharf.quarantine.message_id IS 'Stream sources: the rejected event''s id (NATS <stream>:<sequence>, Redis the entry id); NULL for other sources.';
