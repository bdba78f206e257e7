-- Telemetry backbone: vehicle registry, readings hypertable, dead letters, sequence tracking.

CREATE TABLE vehicles (
    vehicle_id      text PRIMARY KEY,
    display_name    text NOT NULL,
    public_key_pem  text NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE compartments (
    vehicle_id          text NOT NULL REFERENCES vehicles (vehicle_id),
    compartment_id      text NOT NULL,
    temperature_class   text NOT NULL,
    volume_m3           double precision NOT NULL CHECK (volume_m3 > 0),
    PRIMARY KEY (vehicle_id, compartment_id)
);

CREATE TABLE probes (
    vehicle_id          text NOT NULL,
    compartment_id      text NOT NULL,
    probe_id            text NOT NULL,
    position            text NOT NULL,
    accuracy_c          double precision NOT NULL CHECK (accuracy_c > 0),
    calibration_due     date NOT NULL,
    PRIMARY KEY (vehicle_id, compartment_id, probe_id),
    FOREIGN KEY (vehicle_id, compartment_id) REFERENCES compartments (vehicle_id, compartment_id)
);

-- Every reading exactly once. The device's own timestamp is kept; arrival time is separate.
CREATE TABLE readings (
    vehicle_id      text NOT NULL,
    seq             bigint NOT NULL,
    ts              timestamptz NOT NULL,
    channel         text NOT NULL,
    value           double precision NOT NULL,
    clock_synced    boolean NOT NULL,
    history         boolean NOT NULL,
    boot_id         text NOT NULL,
    received_at     timestamptz NOT NULL
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day',
                                 create_default_indexes => false);
    END IF;
END
$$;

-- The one index: it deduplicates (a redelivered reading has the same vehicle, seq and device
-- timestamp; a hypertable's unique index must include its time column) and serves per-vehicle
-- time-range queries. Every extra index roughly halves COPY throughput, so there is no other.
CREATE UNIQUE INDEX readings_vehicle_ts_seq ON readings (vehicle_id, ts, seq);

-- Readings are never edited or deleted (GSP data integrity). Retention past five years
-- drops whole chunks, which does not fire row triggers.
CREATE FUNCTION readings_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'readings are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER readings_no_update_delete BEFORE UPDATE OR DELETE ON readings
    FOR EACH ROW EXECUTE FUNCTION readings_are_immutable();
CREATE TRIGGER readings_no_truncate BEFORE TRUNCATE ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION readings_are_immutable();

-- Per-vehicle sequence bookkeeping for gap detection.
CREATE TABLE vehicle_sequences (
    vehicle_id      text PRIMARY KEY,
    contiguous_to   bigint NOT NULL DEFAULT 0,
    contiguous_advanced_at timestamptz NOT NULL DEFAULT now(),
    max_seq         bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Which seq ranges of each vehicle are stored: one row per inserted run of a batch (usually one
-- per batch), so gap detection never scans readings.
CREATE TABLE ingested_ranges (
    vehicle_id      text NOT NULL,
    first_seq       bigint NOT NULL,
    last_seq        bigint NOT NULL,
    received_at     timestamptz NOT NULL,
    CHECK (first_seq <= last_seq)
);
CREATE INDEX ingested_ranges_vehicle_last ON ingested_ranges (vehicle_id, last_seq);

CREATE TABLE sequence_gaps (
    vehicle_id      text NOT NULL,
    first_seq       bigint NOT NULL,
    last_seq        bigint NOT NULL,
    detected_at     timestamptz NOT NULL DEFAULT now(),
    resend_requests integer NOT NULL DEFAULT 0,
    last_requested_at timestamptz,
    closed_at       timestamptz,
    PRIMARY KEY (vehicle_id, first_seq)
);

-- Rejected messages, with the reason and the raw payload, never silently dropped.
CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    vehicle_id      text,
    reason          text NOT NULL,
    first_seq       bigint,
    last_seq        bigint,
    payload         bytea NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at DESC);

-- Latest status per vehicle (online/offline, outbox depth) from the retained status topic.
CREATE TABLE vehicle_status (
    vehicle_id      text PRIMARY KEY,
    state           text NOT NULL,
    boot_id         text NOT NULL,
    reported_at     timestamptz NOT NULL,
    outbox_depth    integer NOT NULL,
    oldest_unacked_at timestamptz,
    reconnects      integer NOT NULL,
    refused         integer NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
