-- Autovacuum for identity's hot table.
--
-- sessions: one row per login, updated at every token refresh (last use, refresh token) and at
-- logout, and purged when expired. With the default 20 % scale factor a large tenant's sessions
-- table carries many dead versions between vacuums; vacuum after 2 % (at least 100 rows),
-- analyze after 5 %, and keep 15 % of each page free so refreshes are HOT updates.
ALTER TABLE identity.sessions SET (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 100,
    autovacuum_analyze_scale_factor = 0.05
);
