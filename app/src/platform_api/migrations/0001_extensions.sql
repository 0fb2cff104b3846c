-- Extensions. pgvector where the server has it (Debian 13 packages it, Debian 12
-- does not); without it the embedding columns fall back to real[] (0002).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS vector;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pgvector is available but this role cannot create it; embeddings use real[]';
        END;
    END IF;
END
$$;
