-- GSP compliance: per-compartment evaluation state, excursions, alarms and their audit trail.

-- The evaluator's state per compartment, saved with every change so a restarted controller
-- goes on where it stopped. `tracker` is the excursion tracker's serialised state.
CREATE TABLE compartment_state (
    vehicle_id          text NOT NULL,
    compartment_id      text NOT NULL,
    temperature_class   text NOT NULL,
    rulebook_version    text NOT NULL,
    status              text NOT NULL CHECK (status IN ('no_data', 'in_band', 'pending', 'excursion')),
    last_ts             timestamptz,
    in_band_since       timestamptz,
    latest              jsonb NOT NULL DEFAULT '{}',
    prediction          jsonb,
    tracker             jsonb NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, compartment_id),
    FOREIGN KEY (vehicle_id, compartment_id) REFERENCES compartments (vehicle_id, compartment_id)
);

-- Excursions as the rulebook in force decided them. Derived data: a back-fill re-evaluates a
-- compartment's recent history and replaces the excursions it covers.
CREATE TABLE excursions (
    excursion_id        bigserial PRIMARY KEY,
    vehicle_id          text NOT NULL,
    compartment_id      text NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('high', 'low')),
    start_ts            timestamptz NOT NULL,
    end_ts              timestamptz,
    confirmed_ts        timestamptz,
    peak_c              double precision NOT NULL,
    probes              text[] NOT NULL,
    rulebook_version    text NOT NULL,
    decided_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (vehicle_id, compartment_id) REFERENCES compartments (vehicle_id, compartment_id)
);
CREATE INDEX excursions_compartment_start ON excursions (vehicle_id, compartment_id, start_ts);

-- Alarms: open -> acknowledged -> resolved. `condition_active` says whether the cause is still
-- there; an alarm resolves when its condition has cleared and someone has acknowledged it.
CREATE TABLE alarms (
    alarm_id            bigserial PRIMARY KEY,
    kind                text NOT NULL,
    vehicle_id          text NOT NULL REFERENCES vehicles (vehicle_id),
    compartment_id      text NOT NULL DEFAULT '',
    severity            text NOT NULL CHECK (severity IN ('warning', 'critical')),
    state               text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    condition_active    boolean NOT NULL,
    detail              text NOT NULL,
    data_ts             timestamptz NOT NULL,
    opened_at           timestamptz NOT NULL,
    cleared_at          timestamptz,
    acknowledged_by     text,
    acknowledged_at     timestamptz,
    ack_comment         text,
    resolved_at         timestamptz,
    escalation_level    integer NOT NULL DEFAULT 0,
    notifications_sent  integer NOT NULL DEFAULT 0,
    next_notify_at      timestamptz,
    rulebook_version    text NOT NULL
);
-- At most one unresolved alarm of a kind per vehicle compartment.
CREATE UNIQUE INDEX alarms_one_unresolved ON alarms (kind, vehicle_id, compartment_id)
    WHERE state <> 'resolved';
CREATE INDEX alarms_state_opened ON alarms (state, opened_at);
CREATE INDEX alarms_notify_due ON alarms (next_notify_at) WHERE state = 'open';

-- Every change of every alarm, append-only (21 CFR Part 11 style audit trail).
CREATE TABLE alarm_events (
    event_id            bigserial PRIMARY KEY,
    alarm_id            bigint NOT NULL REFERENCES alarms (alarm_id),
    at                  timestamptz NOT NULL,
    event               text NOT NULL,
    actor               text NOT NULL,
    detail              jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id, event_id);

CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER alarm_events_no_update_delete BEFORE UPDATE OR DELETE ON alarm_events
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER alarm_events_no_truncate BEFORE TRUNCATE ON alarm_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();
