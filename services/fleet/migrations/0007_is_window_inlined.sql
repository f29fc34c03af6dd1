-- is_window() guards both booking tables' windows in a CHECK. Declared STRICT over a body that
-- is not (AND of several tests), it could not be inlined, so every insert and update of a
-- booking ran it through the SQL-function executor, parsing its body again each time. Without
-- STRICT the CHECK inlines to the plain range tests. A NULL window gave NULL before and gives
-- NULL now (the columns are NOT NULL anyway); every other window gets the same answer.
CREATE OR REPLACE FUNCTION fleet.is_window(w tstzrange) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT NOT isempty(w) AND NOT lower_inf(w) AND NOT upper_inf(w)
                 AND lower_inc(w) AND NOT upper_inc(w) $$;
