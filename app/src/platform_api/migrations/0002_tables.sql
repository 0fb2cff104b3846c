-- The 15 tables of the multi-tenant platform (shared/reference/schema.md).
CREATE TABLE tenants (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    text NOT NULL,
    -- SHA-256 (hex) of the API key; the key itself is never stored.
    api_key                 text UNIQUE,
    plan                    text NOT NULL DEFAULT 'starter'
                            CHECK (plan IN ('starter', 'growth', 'business', 'enterprise')),
    settings                jsonb NOT NULL DEFAULT '{}'::jsonb,
    stripe_customer_id      text UNIQUE,
    stripe_subscription_id  text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email           text NOT NULL UNIQUE,
    password_hash   text,
    role            text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    name            text,
    avatar_url      text,
    email_verified  timestamptz,
    image           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_tenant_id_idx ON users (tenant_id);

CREATE TABLE accounts (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type                 text NOT NULL,
    provider             text NOT NULL,
    provider_account_id  text NOT NULL,
    refresh_token        text,
    access_token         text,
    expires_at           integer,
    token_type           text,
    scope                text,
    id_token             text,
    session_state        text,
    UNIQUE (provider, provider_account_id)
);
CREATE INDEX accounts_user_id_idx ON accounts (user_id);

CREATE TABLE auth_sessions (
    session_token  text PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires        timestamptz NOT NULL
);
CREATE INDEX auth_sessions_user_id_idx ON auth_sessions (user_id);
CREATE INDEX auth_sessions_expires_idx ON auth_sessions (expires);

CREATE TABLE verification_tokens (
    identifier  text NOT NULL,
    token       text NOT NULL,
    expires     timestamptz NOT NULL,
    PRIMARY KEY (identifier, token)
);

CREATE TABLE widgets (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name              text NOT NULL,
    domain_whitelist  jsonb NOT NULL DEFAULT '[]'::jsonb,
    settings          jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active         boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX widgets_tenant_id_idx ON widgets (tenant_id);

CREATE TABLE meetings (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    room_name        text NOT NULL UNIQUE,
    livekit_room_id  text UNIQUE,
    created_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    started_at       timestamptz,
    ended_at         timestamptz,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX meetings_tenant_id_idx ON meetings (tenant_id);

CREATE TABLE sessions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    widget_id   uuid REFERENCES widgets (id) ON DELETE SET NULL,
    meeting_id  uuid REFERENCES meetings (id) ON DELETE SET NULL,
    mode        text NOT NULL CHECK (mode IN ('text', 'meeting')),
    cost_usd    numeric(10, 4) NOT NULL DEFAULT 0,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz
);
CREATE INDEX sessions_tenant_id_idx ON sessions (tenant_id);

CREATE TABLE messages (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content      text NOT NULL,
    attachments  jsonb NOT NULL DEFAULT '[]'::jsonb,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    "timestamp"  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_session_id_idx ON messages (session_id);

-- Embedding columns: vector(1024) with pgvector, real[] without.
DO $$
DECLARE
    embedding_type text := CASE
        WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN 'vector(1024)'
        ELSE 'real[]'
    END;
BEGIN
    EXECUTE format($sql$
        CREATE TABLE knowledge_documents (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            title       text NOT NULL,
            content     text NOT NULL,
            category    text,
            embedding   %s,
            metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )$sql$, embedding_type);
    EXECUTE format($sql$
        CREATE TABLE knowledge_chunks (
            id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            document_id  uuid NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
            content      text NOT NULL,
            embedding    %s NOT NULL,
            position     integer NOT NULL,
            metadata     jsonb NOT NULL DEFAULT '{}'::jsonb
        )$sql$, embedding_type);
END
$$;
CREATE INDEX knowledge_documents_tenant_id_idx ON knowledge_documents (tenant_id);
CREATE INDEX knowledge_chunks_document_id_idx ON knowledge_chunks (document_id);

CREATE TABLE cost_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    session_id   uuid REFERENCES sessions (id) ON DELETE SET NULL,
    service      text NOT NULL
                 CHECK (service IN ('vision', 'voice_stt', 'voice_tts', 'llm', 'embedding', 'livekit')),
    provider     text NOT NULL,
    tokens_used  integer,
    cost_usd     numeric(10, 6) NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    "timestamp"  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cost_events_tenant_id_timestamp_idx ON cost_events (tenant_id, "timestamp");

CREATE TABLE cost_summaries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    total_cost_usd  numeric(12, 6) NOT NULL DEFAULT 0,
    breakdown       jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_count     integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cost_summaries_tenant_id_idx ON cost_summaries (tenant_id, period_start);

CREATE TABLE budget_alerts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    threshold           numeric(12, 2) NOT NULL,
    current_spend       numeric(12, 6) NOT NULL,
    period              text NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly')),
    severity            text NOT NULL CHECK (severity IN ('warning', 'critical')),
    notifications_sent  integer NOT NULL DEFAULT 0,
    triggered_at        timestamptz NOT NULL DEFAULT now(),
    resolved            boolean NOT NULL DEFAULT false,
    resolved_at         timestamptz,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX budget_alerts_tenant_id_idx ON budget_alerts (tenant_id);

CREATE TABLE ai_personalities (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               text NOT NULL,
    description        text,
    system_prompt      text NOT NULL,
    temperature        real NOT NULL DEFAULT 0.7,
    max_tokens         integer NOT NULL DEFAULT 1024,
    top_p              real NOT NULL DEFAULT 1,
    frequency_penalty  real NOT NULL DEFAULT 0,
    presence_penalty   real NOT NULL DEFAULT 0,
    preferred_model    text,
    is_default         boolean NOT NULL DEFAULT false,
    is_active          boolean NOT NULL DEFAULT true,
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_personalities_tenant_id_idx ON ai_personalities (tenant_id);
