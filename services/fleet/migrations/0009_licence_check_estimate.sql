-- The driver pick still sorted the fleet once its statement was prepared: in the generic plan
-- PostgreSQL makes after five executions, `$2 = ANY (licence_classes)` with an unknown class
-- is taken to keep about one driver in 200, so sorting "one" row again looked cheaper than
-- walking drivers_assignable (1.5 ms mean a pick under load, against 0.1 ms). As a PL/pgSQL
-- function the licence test gets the default selectivity, the plan keeps the index order, and
-- the function runs only for the drivers the walk reaches. Same rule as the inline test: the
-- licence must hold for the whole window and be of the class asked for, if one is.
CREATE FUNCTION fleet.licensed_for(p_classes text[], p_expires_at timestamptz, p_class text,
                                   p_until timestamptz) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$ BEGIN
        RETURN p_expires_at >= p_until AND (p_class IS NULL OR p_class = ANY (p_classes));
    END $$;
