-- Foreign keys between tenant tables carry the tenant: a row may only point at
-- a row of its own tenant. Foreign-key checks bypass RLS, so with keys on `id`
-- alone tenant A could reference tenant B's widget, meeting, session or user,
-- and B's delete then rewrote A's rows through ON DELETE SET NULL.
-- `ON DELETE SET NULL (column)` (PostgreSQL 15+) clears the reference and
-- keeps tenant_id, which is part of the key and NOT NULL.

ALTER TABLE users    ADD CONSTRAINT users_tenant_id_id_key    UNIQUE (tenant_id, id);
ALTER TABLE widgets  ADD CONSTRAINT widgets_tenant_id_id_key  UNIQUE (tenant_id, id);
ALTER TABLE meetings ADD CONSTRAINT meetings_tenant_id_id_key UNIQUE (tenant_id, id);
ALTER TABLE sessions ADD CONSTRAINT sessions_tenant_id_id_key UNIQUE (tenant_id, id);

ALTER TABLE meetings DROP CONSTRAINT meetings_created_by_fkey,
    ADD CONSTRAINT meetings_created_by_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by);

ALTER TABLE sessions DROP CONSTRAINT sessions_widget_id_fkey,
    ADD CONSTRAINT sessions_widget_id_fkey FOREIGN KEY (tenant_id, widget_id)
        REFERENCES widgets (tenant_id, id) ON DELETE SET NULL (widget_id);

ALTER TABLE sessions DROP CONSTRAINT sessions_meeting_id_fkey,
    ADD CONSTRAINT sessions_meeting_id_fkey FOREIGN KEY (tenant_id, meeting_id)
        REFERENCES meetings (tenant_id, id) ON DELETE SET NULL (meeting_id);

ALTER TABLE cost_events DROP CONSTRAINT cost_events_session_id_fkey,
    ADD CONSTRAINT cost_events_session_id_fkey FOREIGN KEY (tenant_id, session_id)
        REFERENCES sessions (tenant_id, id) ON DELETE SET NULL (session_id);
