"""The state file's versioned schema: one entry per version, applied in order by
core/store.py when it opens a file. Never edit a released entry; append a new one.

Who owns which table (its SQL lives in that one module): runs / settings / meta →
core/store.py; folders / messages / dest_messages → the migration's ledger; backups
(the state's copy of a backup's index, for faces) and imports → core/backup/;
placements → core/placements.py; arrivals, actions, correspondents, notices, autoreply →
core/transition/; checklist → core/checklist.py.
"""

from __future__ import annotations

# Each entry upgrades the schema by one version; never edit a released entry, append.
MIGRATIONS: list[str] = [
    # v1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY, job TEXT NOT NULL, started REAL NOT NULL, ended REAL,
        outcome TEXT, summary TEXT);
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY, side TEXT NOT NULL, name TEXT NOT NULL, delimiter TEXT,
        special TEXT, uidvalidity INTEGER, uidnext INTEGER, messages INTEGER, bytes INTEGER,
        mapped_to TEXT, state TEXT, updated REAL, UNIQUE (side, name));
    -- one row per source message (per folder occurrence)
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY, identity TEXT NOT NULL, message_id TEXT,
        src_folder TEXT NOT NULL, src_uidvalidity INTEGER NOT NULL, src_uid INTEGER NOT NULL,
        size INTEGER, flags TEXT, internaldate TEXT,
        dst_folder TEXT, dst_uidvalidity INTEGER, dst_uid INTEGER,
        state TEXT NOT NULL DEFAULT 'planned',   -- planned | copied | present | refused
        reason TEXT, updated REAL,
        UNIQUE (src_folder, src_uidvalidity, src_uid));
    CREATE INDEX messages_identity ON messages (identity);
    CREATE INDEX messages_dst ON messages (dst_folder, state);
    -- what the destination holds (learned by header fetch), to skip what is already there
    CREATE TABLE dest_messages (
        folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
        identity TEXT NOT NULL, PRIMARY KEY (folder, uidvalidity, uid));
    CREATE INDEX dest_identity ON dest_messages (folder, identity);
    CREATE TABLE backups (
        id INTEGER PRIMARY KEY, root TEXT NOT NULL, folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, identity TEXT NOT NULL,
        path TEXT, mbox_offset INTEGER, size INTEGER, sha256 TEXT, done REAL,
        UNIQUE (root, folder, uidvalidity, uid));
    CREATE TABLE arrivals (
        id INTEGER PRIMARY KEY, side TEXT NOT NULL, folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, message_id TEXT,
        sender TEXT, sender_name TEXT, recipients TEXT, subject TEXT, date TEXT,
        seen_at REAL NOT NULL, size INTEGER, language TEXT, badge TEXT,
        state TEXT NOT NULL DEFAULT 'new',        -- new | handled
        preview TEXT, headers TEXT,
        UNIQUE (side, folder, uidvalidity, uid));
    CREATE INDEX arrivals_seen ON arrivals (side, seen_at);
    -- written before anything is sent or appended; a face shows its state in the feed
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY, arrival_id INTEGER REFERENCES arrivals(id), kind TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',    -- pending | running | done | failed | cancelled
        requested REAL NOT NULL, not_before REAL NOT NULL, started REAL, done REAL,
        recipient TEXT, sent_message_id TEXT, outcome TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        auto INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX actions_arrival ON actions (arrival_id);
    CREATE TABLE correspondents (
        address TEXT PRIMARY KEY, name TEXT, first_seen TEXT, last_seen TEXT,
        messages_from INTEGER NOT NULL DEFAULT 0, messages_to INTEGER NOT NULL DEFAULT 0,
        language TEXT, automated INTEGER NOT NULL DEFAULT 0, customer INTEGER NOT NULL DEFAULT 0,
        notified REAL, switched REAL, last_reminded REAL, last_old_arrival REAL);
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY, address TEXT NOT NULL, state TEXT NOT NULL,
        requested REAL, sent REAL, message_id TEXT, outcome TEXT);
    CREATE TABLE checklist (
        item TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'open',  -- open | done | skipped
        by TEXT, evidence TEXT, note TEXT, due TEXT, updated REAL);
    CREATE TABLE autoreply (
        id INTEGER PRIMARY KEY, installed REAL, removed REAL, script_name TEXT,
        previous_active TEXT, detail TEXT);
    """,
    # v2 (core/importer.py): each upload of `switchover import`, recorded before and after
    """
    CREATE TABLE imports (
        id INTEGER PRIMARY KEY, run_id INTEGER, source TEXT NOT NULL, source_ref TEXT NOT NULL,
        identity TEXT NOT NULL, to_folder TEXT NOT NULL,
        state TEXT NOT NULL,                      -- pending | uploaded | refused
        dst_uidvalidity INTEGER, dst_uid INTEGER, reason TEXT, updated REAL);
    CREATE INDEX imports_folder ON imports (to_folder, identity);
    """,
    # v3: every APPEND into the new mailbox is recorded here before it is sent (migration
    # batches, forwards, imports): one identity table decides who places a message, and
    # the appends a dead process left unsettled are known to the next run
    # (core/placements.py owns it). Arrivals keep the identity of their message.
    """
    CREATE TABLE placements (
        id INTEGER PRIMARY KEY, folder TEXT NOT NULL, identity TEXT NOT NULL,
        owner TEXT NOT NULL,                      -- migrate | forward | import
        ref TEXT,                                 -- the owner's key (messages / actions / imports id)
        pid INTEGER NOT NULL, host TEXT,
        state TEXT NOT NULL,                      -- sending | placed
        started REAL NOT NULL, settled REAL, uidvalidity INTEGER, uid INTEGER,
        matched TEXT);                            -- a migration copy this forward stood in for
    CREATE INDEX placements_key ON placements (folder, identity);
    CREATE INDEX placements_state ON placements (state, owner);
    ALTER TABLE arrivals ADD COLUMN identity TEXT;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
