-- The daily purge of idempotency claims (ops maintain) deletes by age; without this index it
-- read the whole table every day. identity and partner have had it from the start.
CREATE INDEX idempotency_keys_age ON fleet.idempotency_keys (created_at);
