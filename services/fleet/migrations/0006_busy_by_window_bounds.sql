-- Which trucks and drivers are busy in a window: the active assignments that overlap it.
--
-- Under row-level security `time_window && $1` (range_overlaps, not leakproof) may not become
-- an index condition, so the availability queries read every active assignment of the tenant,
-- past and future: 3-6 ms per pick at five thousand bookings, growing without end.
--
-- The window's bounds as plain columns compare with leakproof operators. A booking overlaps
-- [s, e) when it starts before e and ends after s; it then also starts after s minus the
-- longest active booking of the tenant, which the length index gives at once. So the busy
-- subplans read a range of `assignments_active_by_start` from s minus that length to e: the
-- bookings that can overlap, whatever the history or how far ahead the tenant books.
ALTER TABLE fleet.assignments
    ADD COLUMN window_start timestamptz GENERATED ALWAYS AS (lower(time_window)) STORED,
    ADD COLUMN window_end   timestamptz GENERATED ALWAYS AS (upper(time_window)) STORED;

CREATE INDEX assignments_active_by_start ON fleet.assignments (tenant_id, window_start)
    INCLUDE (window_end, truck_id, driver_id) WHERE status = 'active';
CREATE INDEX assignments_active_by_length ON fleet.assignments (tenant_id, (window_end - window_start))
    WHERE status = 'active';
