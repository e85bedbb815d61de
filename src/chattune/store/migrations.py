"""The schema as numbered migrations; a database records which ones it has.

Plain SQL both SQLite and PostgreSQL read (``DOUBLE PRECISION`` for timestamps: PostgreSQL's
``REAL`` is 4 bytes). Never edit a released migration: add the next number.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE IF NOT EXISTS jobs (
                name TEXT PRIMARY KEY,
                experiment TEXT NOT NULL,
                spec TEXT NOT NULL,
                status TEXT NOT NULL,
                pid INTEGER,
                mlflow_run_id TEXT,
                error TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION
            )""",
            """CREATE TABLE IF NOT EXISTS stages (
                job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
                stage TEXT NOT NULL,
                position INTEGER NOT NULL,
                status TEXT NOT NULL,
                cache_key TEXT,
                outputs TEXT NOT NULL DEFAULT '{}',
                note TEXT,
                error TEXT,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                PRIMARY KEY (job, stage)
            )""",
            """CREATE TABLE IF NOT EXISTS models (
                name TEXT NOT NULL,
                version TEXT NOT NULL,
                path TEXT NOT NULL,
                job TEXT,
                base_model TEXT,
                description TEXT NOT NULL DEFAULT '',
                tags TEXT NOT NULL DEFAULT '{}',
                labels TEXT NOT NULL DEFAULT '[]',
                lineage TEXT NOT NULL DEFAULT '{}',
                created_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (name, version)
            )""",
            """CREATE TABLE IF NOT EXISTS endpoints (
                name TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                port INTEGER,
                pid INTEGER,
                auth_mode TEXT NOT NULL,
                status TEXT NOT NULL,
                traffic TEXT NOT NULL DEFAULT '{}',
                mirror_traffic TEXT NOT NULL DEFAULT '{}',
                error TEXT,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS deployments (
                endpoint TEXT NOT NULL REFERENCES endpoints(name) ON DELETE CASCADE,
                name TEXT NOT NULL,
                model TEXT NOT NULL,
                model_path TEXT NOT NULL,
                settings TEXT NOT NULL DEFAULT '{}',
                status TEXT NOT NULL,
                instances TEXT NOT NULL DEFAULT '[]',
                error TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (endpoint, name)
            )""",
        ),
    ),
    (
        2,
        (
            # The parameters a job really trains with, and where each came from.
            "ALTER TABLE jobs ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}'",
            "CREATE INDEX IF NOT EXISTS stages_cache ON stages (stage, cache_key, status)",
        ),
    ),
    (
        3,
        (
            """CREATE TABLE IF NOT EXISTS compute_targets (
                name TEXT PRIMARY KEY,
                type TEXT NOT NULL,
                address TEXT,
                settings TEXT NOT NULL DEFAULT '{}',
                created_at DOUBLE PRECISION NOT NULL
            )""",
            # Where a job runs, and its handle there (a Ray submission id).
            "ALTER TABLE jobs ADD COLUMN compute TEXT NOT NULL DEFAULT 'local'",
            "ALTER TABLE jobs ADD COLUMN submission TEXT",
        ),
    ),
    (
        4,
        (
            # Each `jobs resume`: when, and from which checkpoint (JSON list).
            "ALTER TABLE jobs ADD COLUMN resumes TEXT NOT NULL DEFAULT '[]'",
            # A compute target's queue order: when the job was created or last resumed.
            "ALTER TABLE jobs ADD COLUMN queued_at DOUBLE PRECISION",
        ),
    ),
    (
        5,
        (
            # Archived versions are hidden from lists but still deployable by version; the
            # MLflow registered-model version number that mirrors each chattune version.
            "ALTER TABLE models ADD COLUMN archived INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE models ADD COLUMN mlflow_version TEXT",
        ),
    ),
    (
        6,
        (
            # What the endpoint is for (the platform's `ManagedOnlineEndpoint.description`).
            "ALTER TABLE endpoints ADD COLUMN description TEXT NOT NULL DEFAULT ''",
        ),
    ),
    (
        7,
        (
            # A version's record is written first as 'pending' (not listed) and becomes
            # 'ready' once its folder and its MLflow version exist; 'deleting' while a delete
            # removes them. The next registry command finishes or rolls back what a killed
            # command left (docs/registry.md).
            "ALTER TABLE models ADD COLUMN state TEXT NOT NULL DEFAULT 'ready'",
        ),
    ),
    (
        8,
        (
            # A job's predicted and measured time and memory (JSON), by its shape: what the
            # pre-flight estimate learns from. ``preflight:<digest>`` rows are estimates that
            # no job has used yet (jobs create --estimate).
            """CREATE TABLE IF NOT EXISTS job_resources (
                job TEXT PRIMARY KEY,
                model TEXT NOT NULL,
                shape TEXT NOT NULL,
                predicted TEXT NOT NULL DEFAULT '{}',
                actual TEXT NOT NULL DEFAULT '{}',
                created_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS job_resources_shape ON job_resources (model, shape)",
            # What happened to a registered version (a forced promotion's warning, ...).
            """CREATE TABLE IF NOT EXISTS model_events (
                name TEXT NOT NULL,
                version TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                kind TEXT NOT NULL,
                message TEXT NOT NULL
            )""",
            # Opt-in pairs of (live answer, mirror answer) the gateway keeps per endpoint.
            """CREATE TABLE IF NOT EXISTS mirror_pairs (
                endpoint TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                pair TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS mirror_pairs_endpoint ON mirror_pairs (endpoint, at)",
        ),
    ),
)
