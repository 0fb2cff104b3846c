-- Sign-in (Auth.js-compatible, database sessions). Everything that must work
-- before the tenant is known runs in SECURITY DEFINER functions owned by the
-- auth role (see 0004): each takes what the caller holds and does one thing.
--
-- Session tokens are stored as their SHA-256 (hex): the cookie carries the
-- token, the table only its hash, so a copy of auth_sessions (a backup, a
-- replica, a role that can read it) holds no usable session.

CREATE FUNCTION auth_token_hash(p_token text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog
AS $$
    SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_token, 'UTF8')), 'hex')
$$;

CREATE OR REPLACE FUNCTION auth_session_principal(p_session_token text)
    RETURNS TABLE (user_id uuid, tenant_id uuid, expires timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.user_id, u.tenant_id, s.expires
      FROM public.auth_sessions s
      JOIN public.users u ON u.id = s.user_id
     WHERE s.session_token = public.auth_token_hash(p_session_token)
       AND s.expires > pg_catalog.now()
$$;

-- A session cookie -> everything a request needs about its user, in one call.
CREATE FUNCTION auth_session_user(p_session_token text)
    RETURNS TABLE (user_id uuid, tenant_id uuid, role text, email text, name text, image text, expires timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id, u.tenant_id, u.role, u.email, u.name, coalesce(u.image, u.avatar_url), s.expires
      FROM public.auth_sessions s
      JOIN public.users u ON u.id = s.user_id
     WHERE s.session_token = public.auth_token_hash(p_session_token)
       AND s.expires > pg_catalog.now()
$$;

-- A provider identity signs in and gets a session:
--   known account               -> its user                      ('signed_in')
--   unverified or no e-mail     -> refused                       ('email_unverified')
--   e-mail of a user without    -> linked to that user           ('linked')
--     any account (admin-added)
--   e-mail of a user with       -> refused                       ('account_not_linked')
--     another account
--   unknown e-mail              -> a new tenant, user as owner   ('created')
-- E-mails are stored lower-case (users.create does the same).
CREATE FUNCTION auth_sign_in(
    p_provider text, p_provider_account_id text, p_email text, p_email_verified boolean,
    p_name text, p_image text, p_session_token text, p_expires timestamptz)
    RETURNS TABLE (outcome text, user_id uuid, tenant_id uuid)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_email  text := pg_catalog.lower(pg_catalog.btrim(p_email));
    v_user   uuid;
    v_tenant uuid;
    v_outcome text;
BEGIN
    IF p_session_token IS NULL OR pg_catalog.length(p_session_token) < 32 THEN
        RAISE EXCEPTION 'session token too short' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_provider IS NULL OR p_provider_account_id IS NULL OR p_provider_account_id = '' THEN
        RAISE EXCEPTION 'provider identity is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.user_id, u.tenant_id INTO v_user, v_tenant
      FROM public.accounts a JOIN public.users u ON u.id = a.user_id
     WHERE a.provider = p_provider AND a.provider_account_id = p_provider_account_id;
    IF FOUND THEN
        v_outcome := 'signed_in';
    ELSIF NOT coalesce(p_email_verified, false) OR coalesce(v_email, '') = '' THEN
        RETURN QUERY SELECT 'email_unverified'::text, NULL::uuid, NULL::uuid;
        RETURN;
    ELSE
        SELECT u.id, u.tenant_id INTO v_user, v_tenant FROM public.users u WHERE u.email = v_email FOR UPDATE;
        IF FOUND THEN
            IF EXISTS (SELECT 1 FROM public.accounts a WHERE a.user_id = v_user) THEN
                RETURN QUERY SELECT 'account_not_linked'::text, NULL::uuid, NULL::uuid;
                RETURN;
            END IF;
            UPDATE public.users u
               SET email_verified = coalesce(u.email_verified, pg_catalog.now()),
                   name = coalesce(u.name, p_name), image = coalesce(u.image, p_image),
                   updated_at = pg_catalog.now()
             WHERE u.id = v_user;
            v_outcome := 'linked';
        ELSE
            v_tenant := public.provision_tenant(coalesce(nullif(pg_catalog.btrim(p_name), ''), v_email));
            INSERT INTO public.users (tenant_id, email, role, name, image, email_verified)
                 VALUES (v_tenant, v_email, 'owner', p_name, p_image, pg_catalog.now())
              RETURNING id INTO v_user;
            v_outcome := 'created';
        END IF;
        INSERT INTO public.accounts (user_id, type, provider, provider_account_id)
             VALUES (v_user, 'oidc', p_provider, p_provider_account_id);
    END IF;
    INSERT INTO public.auth_sessions (session_token, user_id, expires)
         VALUES (public.auth_token_hash(p_session_token), v_user, p_expires);
    RETURN QUERY SELECT v_outcome, v_user, v_tenant;
END
$$;

-- Sign-out and the expiry's move forward: the holder of the token only.
CREATE FUNCTION auth_session_delete(p_session_token text) RETURNS boolean
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM public.auth_sessions WHERE session_token = public.auth_token_hash(p_session_token) RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM gone)
$$;

CREATE FUNCTION auth_session_extend(p_session_token text, p_expires timestamptz) RETURNS timestamptz
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE public.auth_sessions SET expires = greatest(expires, p_expires)
     WHERE session_token = public.auth_token_hash(p_session_token) AND expires > pg_catalog.now()
    RETURNING expires
$$;

-- The purge timer's one call: expired sessions, nothing else.
CREATE FUNCTION auth_purge_expired_sessions() RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM public.auth_sessions WHERE expires <= pg_catalog.now() RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

-- knowledge.search: full-text search over title and content, ranked.
ALTER TABLE knowledge_documents ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (setweight(to_tsvector('english', coalesce(title, '')), 'A')
                         || setweight(to_tsvector('english', coalesce(content, '')), 'B')) STORED;
CREATE INDEX knowledge_documents_search_idx ON knowledge_documents USING gin (search_vector);
