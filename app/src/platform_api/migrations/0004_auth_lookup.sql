-- What sign-in must find before the tenant is known, and tenant provisioning.
-- These functions run as their owner (SECURITY DEFINER, search_path pinned,
-- every name schema-qualified). `platform-api migrate` hands them to the
-- NOLOGIN auth role (the only role with BYPASSRLS, which owns nothing else and
-- cannot log in) and grants EXECUTE to the runtime app role only. Each takes
-- the secret the caller already holds and returns the minimum.

-- A session cookie -> (user, tenant), while the session is valid.
CREATE FUNCTION auth_session_principal(p_session_token text)
    RETURNS TABLE (user_id uuid, tenant_id uuid, expires timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.user_id, u.tenant_id, s.expires
      FROM public.auth_sessions s
      JOIN public.users u ON u.id = s.user_id
     WHERE s.session_token = p_session_token
       AND s.expires > pg_catalog.now()
$$;

-- An OAuth provider account -> (user, tenant).
CREATE FUNCTION auth_account_principal(p_provider text, p_provider_account_id text)
    RETURNS TABLE (user_id uuid, tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.user_id, u.tenant_id
      FROM public.accounts a
      JOIN public.users u ON u.id = a.user_id
     WHERE a.provider = p_provider
       AND a.provider_account_id = p_provider_account_id
$$;

-- An API key (the caller hashes it: SHA-256 hex) -> tenant.
CREATE FUNCTION auth_api_key_tenant(p_api_key_hash text)
    RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id FROM public.tenants t WHERE t.api_key = p_api_key_hash
$$;

-- Tenant creation: the one path that inserts into tenants.
CREATE FUNCTION provision_tenant(p_name text, p_plan text DEFAULT 'starter', p_api_key_hash text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id uuid := gen_random_uuid();
BEGIN
    IF p_name IS NULL OR length(btrim(p_name)) = 0 THEN
        RAISE EXCEPTION 'tenant name is required' USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO public.tenants (id, name, plan, api_key) VALUES (new_id, p_name, p_plan, p_api_key_hash);
    RETURN new_id;
END
$$;
