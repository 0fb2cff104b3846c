-- Row-Level Security on all 15 tables, ENABLEd and FORCEd (so the owner is
-- filtered too). Every policy compares with get_current_tenant_id(), which is
-- NULL when no tenant is set: NULL matches no row (fail closed).

CREATE FUNCTION get_current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
AS $$
    SELECT NULLIF(current_setting('app.current_tenant_id', true), '')::uuid
$$;

-- Tables keyed by tenant_id: one policy per command. `(SELECT f())` is
-- evaluated once per statement rather than once per row.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'widgets', 'meetings', 'sessions', 'knowledge_documents',
                             'cost_events', 'cost_summaries', 'budget_alerts', 'ai_personalities']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT USING (tenant_id = (SELECT get_current_tenant_id()))',
                       t || '_select', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR INSERT WITH CHECK (tenant_id = (SELECT get_current_tenant_id()))',
                       t || '_insert', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR UPDATE USING (tenant_id = (SELECT get_current_tenant_id())) '
                       'WITH CHECK (tenant_id = (SELECT get_current_tenant_id()))', t || '_update', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR DELETE USING (tenant_id = (SELECT get_current_tenant_id()))',
                       t || '_delete', t);
    END LOOP;
END
$$;

-- tenants: a tenant sees and changes only itself. Creating one is the
-- deliberate provisioning path (provision_tenant in 0004), not an open INSERT.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_select ON tenants FOR SELECT USING (id = (SELECT get_current_tenant_id()));
CREATE POLICY tenants_insert ON tenants FOR INSERT WITH CHECK (id = (SELECT get_current_tenant_id()));
CREATE POLICY tenants_update ON tenants FOR UPDATE
    USING (id = (SELECT get_current_tenant_id())) WITH CHECK (id = (SELECT get_current_tenant_id()));
CREATE POLICY tenants_delete ON tenants FOR DELETE USING (id = (SELECT get_current_tenant_id()));

-- Tables whose tenant is their parent's: the sub-select on the parent is itself
-- filtered by the parent's policies (no BYPASSRLS anywhere on this path).
DO $$
DECLARE
    r record;
    visible text;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('accounts', 'users', 'user_id'),
        ('auth_sessions', 'users', 'user_id'),
        ('messages', 'sessions', 'session_id'),
        ('knowledge_chunks', 'knowledge_documents', 'document_id')
    ) AS t (child, parent, fk)
    LOOP
        visible := format('EXISTS (SELECT 1 FROM %I p WHERE p.id = %I.%I)', r.parent, r.child, r.fk);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', r.child);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', r.child);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT USING (%s)', r.child || '_select', r.child, visible);
        EXECUTE format('CREATE POLICY %I ON %I FOR INSERT WITH CHECK (%s)', r.child || '_insert', r.child, visible);
        EXECUTE format('CREATE POLICY %I ON %I FOR UPDATE USING (%s) WITH CHECK (%s)',
                       r.child || '_update', r.child, visible, visible);
        EXECUTE format('CREATE POLICY %I ON %I FOR DELETE USING (%s)', r.child || '_delete', r.child, visible);
    END LOOP;
END
$$;

-- verification_tokens belong to no tenant yet (an e-mail sign-in in progress).
-- A row is reachable only by whoever holds its identifier and token, set as
-- app.verification_identifier and app.verification_token for the transaction.
ALTER TABLE verification_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE verification_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY verification_tokens_select ON verification_tokens FOR SELECT
    USING (identifier = current_setting('app.verification_identifier', true)
           AND token = current_setting('app.verification_token', true));
CREATE POLICY verification_tokens_insert ON verification_tokens FOR INSERT
    WITH CHECK (identifier = current_setting('app.verification_identifier', true)
                AND token = current_setting('app.verification_token', true));
CREATE POLICY verification_tokens_update ON verification_tokens FOR UPDATE
    USING (identifier = current_setting('app.verification_identifier', true)
           AND token = current_setting('app.verification_token', true))
    WITH CHECK (identifier = current_setting('app.verification_identifier', true)
                AND token = current_setting('app.verification_token', true));
CREATE POLICY verification_tokens_delete ON verification_tokens FOR DELETE
    USING (identifier = current_setting('app.verification_identifier', true)
           AND token = current_setting('app.verification_token', true));
