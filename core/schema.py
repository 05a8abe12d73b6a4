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
    # v4 (core/notify/ledger.py, issue 12 — the notice campaign): one row per person and
    # campaign, written (with its Message-ID) before the SMTP transaction and settled after:
    # queued → sending (claimed by a pid; data_at set right before the message data
    # leaves) → sent | doubt | failed | bounced | cancelled. One notice per person per
    # campaign: UNIQUE (campaign, address).
    """
    ALTER TABLE notices ADD COLUMN campaign TEXT NOT NULL DEFAULT 'notice';
    ALTER TABLE notices ADD COLUMN name TEXT;
    ALTER TABLE notices ADD COLUMN grp TEXT;
    ALTER TABLE notices ADD COLUMN language TEXT;
    ALTER TABLE notices ADD COLUMN organisation TEXT;
    ALTER TABLE notices ADD COLUMN rank INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE notices ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE notices ADD COLUMN claimed_by INTEGER;
    ALTER TABLE notices ADD COLUMN started REAL;
    ALTER TABLE notices ADD COLUMN data_at REAL;
    ALTER TABLE notices ADD COLUMN reply TEXT;
    ALTER TABLE notices ADD COLUMN sent_copy TEXT;      -- NULL | placed | filed by the server | none | failed: …
    ALTER TABLE notices ADD COLUMN bounce TEXT;
    ALTER TABLE notices ADD COLUMN updated REAL;
    CREATE UNIQUE INDEX notices_key ON notices (campaign, address);
    CREATE INDEX notices_state ON notices (campaign, state);
    CREATE INDEX notices_mid ON notices (message_id);
    """,
    # (issue 12, people: core/transition/people.py owns correspondents and people_groups,
    # core/transition/history.py history_marks) who a person is (group guessed with its
    # evidence, organisation, the key of one person's several addresses), the language of
    # their own words (votes per language), what the user chose (overrides every guess;
    # a rescan never touches it), the notice's state and bounces. The scan marks move to
    # their own table and the history is read again once, with bodies: the counts restart.
    """
    ALTER TABLE correspondents ADD COLUMN org TEXT;
    ALTER TABLE correspondents ADD COLUMN alias_key TEXT;
    ALTER TABLE correspondents ADD COLUMN group_guess TEXT;
    ALTER TABLE correspondents ADD COLUMN evidence TEXT;
    ALTER TABLE correspondents ADD COLUMN folders TEXT;       -- JSON {folder: messages from them}
    ALTER TABLE correspondents ADD COLUMN lang_votes TEXT;    -- JSON {code: messages; ">code": ours to them}
    ALTER TABLE correspondents ADD COLUMN auto_from INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE correspondents ADD COLUMN list_from INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE correspondents ADD COLUMN bounce_from INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE correspondents ADD COLUMN sent_as INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE correspondents ADD COLUMN choice_group TEXT;
    ALTER TABLE correspondents ADD COLUMN choice_language TEXT;
    ALTER TABLE correspondents ADD COLUMN choice_notify INTEGER;
    ALTER TABLE correspondents ADD COLUMN choice_name TEXT;
    ALTER TABLE correspondents ADD COLUMN notice_state TEXT;  -- last NoticeChanged state (notice / internal)
    ALTER TABLE correspondents ADD COLUMN notice_campaign TEXT;
    ALTER TABLE correspondents ADD COLUMN notice_at REAL;
    ALTER TABLE correspondents ADD COLUMN final_sent REAL;
    ALTER TABLE correspondents ADD COLUMN bounced REAL;
    ALTER TABLE correspondents ADD COLUMN bounce_reason TEXT;
    CREATE TABLE people_groups (name TEXT PRIMARY KEY, notify INTEGER NOT NULL);
    CREATE TABLE history_marks (
        folder TEXT PRIMARY KEY, uidvalidity INTEGER NOT NULL, last_uid INTEGER NOT NULL);
    UPDATE correspondents SET messages_from = 0, messages_to = 0, first_seen = NULL, last_seen = NULL;
    """,
    # (issue 13, preflight: core/prepare/roundtrip.py) every test message of the round
    # trip, written before it is sent and settled after: sending → sent | doubt | failed,
    # then arrived | missing (seconds it took) and deleted; a row left in 'sending' by a
    # dead process is doubt, never sent again.
    """
    CREATE TABLE preflight_sends (
        id INTEGER PRIMARY KEY, run TEXT NOT NULL, leg TEXT NOT NULL, from_side TEXT NOT NULL,
        to_side TEXT NOT NULL, to_address TEXT NOT NULL, message_id TEXT NOT NULL,
        state TEXT NOT NULL,                      -- sending | sent | doubt | failed | arrived | missing
        pid INTEGER, started REAL NOT NULL, sent REAL, arrived REAL, seconds REAL,
        deleted INTEGER NOT NULL DEFAULT 0, outcome TEXT,
        UNIQUE (run, leg));
    """,
    # (issue 13, everywhere else: core/prepare/scanledger.py) each `switchover scan` and
    # every place the old address was found in a file or web page: open → fixed when a
    # later scan of the same source no longer finds it; 'unread' rows are files or pages
    # that could not be searched (reason in snippet) until a scan reads them (resolved).
    """
    CREATE TABLE scans (
        id INTEGER PRIMARY KEY, started REAL NOT NULL, finished REAL,
        targets TEXT NOT NULL,                    -- JSON {"paths": [...], "urls": [...]}
        addresses TEXT NOT NULL,                  -- JSON list of the addresses searched for
        summary TEXT);                            -- JSON counts
    CREATE TABLE scan_places (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL,   -- file | url
        location TEXT NOT NULL, address TEXT NOT NULL, form TEXT NOT NULL, snippet TEXT NOT NULL,
        state TEXT NOT NULL,                      -- open | fixed | unread | resolved
        first_scan INTEGER NOT NULL, last_scan INTEGER NOT NULL, fixed_scan INTEGER);
    CREATE INDEX scan_places_state ON scan_places (state, source);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
