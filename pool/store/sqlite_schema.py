"""The SQLite store's schema: its migrations, one step per schema version (the PostgreSQL store has the same
versions, in postgres_schema.py). Kept apart from the dialect (sqlite.py) so that it can grow a step at a time while
the dialect stays what it is: connections, locks and type adaptation."""

from __future__ import annotations

from pool.store.sql import Migration

_SCHEMA_V1: Migration = (
    """
    CREATE TABLE farmers (
        launcher_id BLOB PRIMARY KEY,
        p2_singleton_puzzle_hash BLOB NOT NULL,
        delay_time INTEGER NOT NULL,
        delay_puzzle_hash BLOB NOT NULL,
        authentication_public_key BLOB NOT NULL,
        singleton_tip BLOB NOT NULL,
        singleton_tip_state BLOB NOT NULL,
        difficulty INTEGER NOT NULL,
        payout_instructions TEXT NOT NULL,
        payout_puzzle_hash BLOB NOT NULL,
        is_pool_member INTEGER NOT NULL,
        points INTEGER NOT NULL CHECK (points >= 0),
        joined_at INTEGER NOT NULL,
        pending_difficulty INTEGER,
        pending_difficulty_at INTEGER
    )
    """,
    "CREATE INDEX farmers_p2_singleton ON farmers (p2_singleton_puzzle_hash)",
    """
    CREATE TABLE partials (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        proof_hash BLOB NOT NULL UNIQUE,
        sp_hash BLOB NOT NULL,
        end_of_sub_slot INTEGER NOT NULL,
        harvester_id BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        difficulty INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected')),
        reject_reason TEXT
    )
    """,
    "CREATE INDEX partials_status_received ON partials (status, received_at)",
    "CREATE INDEX partials_launcher_received ON partials (launcher_id, received_at)",
    """
    CREATE TABLE reward_claims (
        coin_id BLOB PRIMARY KEY,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        amount INTEGER NOT NULL,
        coin_height INTEGER NOT NULL,
        spend_bundle_name BLOB,
        status TEXT NOT NULL CHECK (status IN ('submitted', 'confirmed', 'failed')),
        submitted_at INTEGER NOT NULL,
        submitted_height INTEGER NOT NULL,
        confirmed_height INTEGER,
        error TEXT
    )
    """,
    "CREATE INDEX reward_claims_status ON reward_claims (status)",
    """
    CREATE TABLE payout_rounds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        scheme TEXT NOT NULL,
        total INTEGER NOT NULL,
        pool_fee INTEGER NOT NULL,
        blockchain_fees INTEGER NOT NULL,
        farmer_total INTEGER NOT NULL,
        remainder INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'done'))
    )
    """,
    # The database itself refuses a second open round, whatever the code above it does.
    "CREATE UNIQUE INDEX payout_rounds_one_open ON payout_rounds (status) WHERE status = 'open'",
    """
    CREATE TABLE payment_batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        round_id INTEGER NOT NULL REFERENCES payout_rounds (id),
        batch_index INTEGER NOT NULL,
        fee INTEGER NOT NULL CHECK (fee >= 0),
        status TEXT NOT NULL CHECK (status IN ('pending', 'submitted', 'confirmed')),
        tx_id BLOB,
        spend_bundle BLOB,
        confirmed_height INTEGER,
        updated_at INTEGER NOT NULL,
        UNIQUE (round_id, batch_index)
    )
    """,
    """
    CREATE TABLE payments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        round_id INTEGER NOT NULL,
        batch_index INTEGER NOT NULL,
        puzzle_hash BLOB NOT NULL,
        amount INTEGER NOT NULL CHECK (amount >= 0),
        launcher_id BLOB REFERENCES farmers (launcher_id),
        points INTEGER NOT NULL CHECK (points >= 0),
        FOREIGN KEY (round_id, batch_index) REFERENCES payment_batches (round_id, batch_index)
    )
    """,
    "CREATE INDEX payments_launcher ON payments (launcher_id)",
)

_SCHEMA_V2_LEDGER: Migration = (
    # Mojos shared out to a farmer and not yet paid.
    "ALTER TABLE farmers ADD COLUMN owed INTEGER NOT NULL DEFAULT 0 CHECK (owed >= 0)",
    "ALTER TABLE reward_claims ADD COLUMN fee INTEGER NOT NULL DEFAULT 0 CHECK (fee >= 0)",
    "ALTER TABLE reward_claims ADD COLUMN fee_spend_bundle BLOB",
    "ALTER TABLE payment_batches ADD COLUMN submitted_height INTEGER",
    # Running balances of the two pool-level ledger accounts; CHECK makes an overdraft abort its transaction.
    "CREATE TABLE ledger_accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))",
    # A pool that paid rounds before the ledger existed (they paid the wallet's balance) opens with what its confirmed
    # claims have not yet paid for; what those rounds paid beyond the claims (operator funds, donations) is recorded
    # once as pre_ledger_excess so that the books balance from the first day.
    """
    INSERT INTO ledger_accounts (name, balance) VALUES
        ('pool_fee_share', 0),
        ('undistributed', MAX(0,
            (SELECT COALESCE(SUM(amount), 0) FROM reward_claims WHERE status = 'confirmed')
            - (SELECT COALESCE(SUM(total - remainder), 0) FROM payout_rounds))),
        ('pre_ledger_excess', MAX(0,
            (SELECT COALESCE(SUM(total - remainder), 0) FROM payout_rounds)
            - (SELECT COALESCE(SUM(amount), 0) FROM reward_claims WHERE status = 'confirmed')))
    """,
    """
    CREATE TABLE ledger_entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount >= 0),
        launcher_id BLOB,
        reference TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE distributions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        scheme TEXT NOT NULL,
        total INTEGER NOT NULL CHECK (total > 0),
        pool_fee INTEGER NOT NULL CHECK (pool_fee >= 0),
        farmer_total INTEGER NOT NULL CHECK (farmer_total >= 0),
        remainder INTEGER NOT NULL CHECK (remainder >= 0)
    )
    """,
    """
    CREATE TABLE distribution_shares (
        distribution_id INTEGER NOT NULL REFERENCES distributions (id),
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        amount INTEGER NOT NULL CHECK (amount > 0),
        points INTEGER NOT NULL CHECK (points >= 0),
        PRIMARY KEY (distribution_id, launcher_id)
    )
    """,
)

# Membership and loop robustness: the newest PUT /farmer token accepted per farmer (a captured PUT cannot
# be replayed to undo a later change), and partials settled without a re-check because the node no longer knew their
# signage point (the pool fell behind; config partials.stale_partials decides whether they are credited).
_SCHEMA_V3_MEMBERSHIP: Migration = (
    "ALTER TABLE farmers ADD COLUMN last_put_token INTEGER",
    "ALTER TABLE partials ADD COLUMN stale INTEGER NOT NULL DEFAULT 0 CHECK (stale IN (0, 1))",
)


_SCHEMA_V4_PAGES: Migration = (
    # Partials refused at intake once the farmer's signature was verified (so nobody else can fill its chart).
    """
    CREATE TABLE partial_refusals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        received_at INTEGER NOT NULL,
        reason TEXT NOT NULL
    )
    """,
    "CREATE INDEX partial_refusals_launcher_received ON partial_refusals (launcher_id, received_at)",
    "CREATE INDEX partial_refusals_received ON partial_refusals (received_at)",
    "CREATE INDEX partials_received ON partials (received_at)",
    # Farmers' browser sessions (GET /login): only a hash of the cookie's token is kept.
    """
    CREATE TABLE web_sessions (
        token_hash BLOB PRIMARY KEY,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX web_sessions_expires ON web_sessions (expires_at)",
)


_SCHEMA_V5_CHAIN_TRUTH: Migration = (
    # A claim can be LOST (its reward spent without paying the pool), and its fee settles on its own, once the chain
    # shows whether the fee spend landed: `fee` is what stays charged, `fee_settled` says whether that is final, and
    # `earlier_fees` keeps the landed fees of the coin's earlier claims when a failed one is replaced.
    # SQLite cannot change a CHECK constraint in place: the table is built anew. A FAILED claim's fee was given back
    # when it failed (the old rule): it is charged 0 now.
    """
    CREATE TABLE reward_claims_v5 (
        coin_id BLOB PRIMARY KEY,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        amount INTEGER NOT NULL,
        coin_height INTEGER NOT NULL,
        spend_bundle_name BLOB,
        status TEXT NOT NULL CHECK (status IN ('submitted', 'confirmed', 'failed', 'lost')),
        submitted_at INTEGER NOT NULL,
        submitted_height INTEGER NOT NULL,
        confirmed_height INTEGER,
        error TEXT,
        fee INTEGER NOT NULL DEFAULT 0 CHECK (fee >= 0),
        fee_spend_bundle BLOB,
        fee_settled INTEGER NOT NULL DEFAULT 1 CHECK (fee_settled IN (0, 1)),
        earlier_fees INTEGER NOT NULL DEFAULT 0 CHECK (earlier_fees >= 0)
    )
    """,
    """
    INSERT INTO reward_claims_v5 (
        coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, submitted_at, submitted_height,
        confirmed_height, error, fee, fee_spend_bundle, fee_settled
    )
    SELECT coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, submitted_at, submitted_height,
        confirmed_height, error, CASE WHEN status = 'failed' THEN 0 ELSE fee END, fee_spend_bundle,
        CASE WHEN status = 'submitted' AND fee_spend_bundle IS NOT NULL THEN 0 ELSE 1 END
    FROM reward_claims
    """,
    "DROP TABLE reward_claims",
    "ALTER TABLE reward_claims_v5 RENAME TO reward_claims",
    "CREATE INDEX reward_claims_status ON reward_claims (status)",
    # Every transaction ever recorded for a batch (its current one becomes version 1; older ones were not kept).
    """
    CREATE TABLE batch_versions (
        batch_id INTEGER NOT NULL REFERENCES payment_batches (id),
        version INTEGER NOT NULL CHECK (version >= 1),
        tx_id BLOB NOT NULL,
        spend_bundle BLOB NOT NULL,
        fee INTEGER NOT NULL CHECK (fee >= 0),
        created_at INTEGER NOT NULL,
        height INTEGER,
        PRIMARY KEY (batch_id, version)
    )
    """,
    """
    INSERT INTO batch_versions (batch_id, version, tx_id, spend_bundle, fee, created_at, height)
    SELECT id, 1, tx_id, spend_bundle, fee, updated_at, submitted_height FROM payment_batches
    WHERE tx_id IS NOT NULL AND spend_bundle IS NOT NULL
    """,
    # Coins held by the pool's transactions that may still land (filled for those in flight after this step).
    """
    CREATE TABLE coin_reservations (
        coin_id BLOB PRIMARY KEY,
        holder TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX coin_reservations_holder ON coin_reservations (holder)",
    # The leader's epoch (fencing) and facts about the database itself (migrate-store's mark).
    """
    CREATE TABLE leadership (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch INTEGER NOT NULL,
        holder TEXT NOT NULL,
        taken_at INTEGER NOT NULL
    )
    """,
    "INSERT INTO leadership (id, epoch, holder, taken_at) VALUES (1, 0, '', 0)",
    "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


_SCHEMA_V6_TARGET_PROOF: Migration = (
    # The proof that the pool's wallet owns the target address: absorbs wait until there is one.
    """
    CREATE TABLE target_proofs (
        target_puzzle_hash BLOB PRIMARY KEY,
        address TEXT NOT NULL,
        fingerprint INTEGER,
        public_key BLOB NOT NULL,
        signature BLOB NOT NULL,
        signing_mode TEXT NOT NULL,
        message TEXT NOT NULL,
        proven_at INTEGER NOT NULL
    )
    """,
)


_SCHEMA_V7_DIFFICULTY_HISTORY: Migration = (
    # A partial is worth the difficulty in force at its signage point, which may have changed since: when the current
    # difficulty took effect (0: the farmer's first), and every change (a PUT's pending one from its time on), for a
    # day (pool.store.abstract.DIFFICULTY_HISTORY_SECONDS).
    "ALTER TABLE farmers ADD COLUMN difficulty_since INTEGER NOT NULL DEFAULT 0",
    """
    CREATE TABLE difficulty_changes (
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        effective_at INTEGER NOT NULL,
        difficulty INTEGER NOT NULL,
        PRIMARY KEY (launcher_id, effective_at)
    )
    """,
    """
    INSERT INTO difficulty_changes (launcher_id, effective_at, difficulty)
    SELECT launcher_id, pending_difficulty_at, pending_difficulty FROM farmers
    WHERE pending_difficulty IS NOT NULL AND pending_difficulty_at IS NOT NULL
    """,
    """
    INSERT INTO difficulty_changes (launcher_id, effective_at, difficulty)
    SELECT launcher_id, 0, difficulty FROM farmers WHERE TRUE  -- WHERE: SQLite's parser needs it before ON CONFLICT
    ON CONFLICT (launcher_id, effective_at) DO NOTHING
    """,
)


_SCHEMA_V8_SESSIONS_PER_FARMER: Migration = (
    # Sessions per launcher are capped (the oldest go first) and end when the farmer's authentication key changes.
    "CREATE INDEX web_sessions_launcher ON web_sessions (launcher_id, created_at)",
)


_SCHEMA_V9_CLAIM_FEE_VERSIONS: Migration = (
    # Every fee spend recorded for a claim's absorb: a stuck absorb gets a new version with a higher fee, the earlier
    # ones may still land, and whichever lands is the fee charged. A fee spend that may still land is version 1.
    """
    CREATE TABLE claim_fee_versions (
        coin_id BLOB NOT NULL REFERENCES reward_claims (coin_id),
        version INTEGER NOT NULL CHECK (version >= 1),
        spend_bundle BLOB NOT NULL,
        fee INTEGER NOT NULL CHECK (fee >= 0),
        created_at INTEGER NOT NULL,
        height INTEGER,
        settled INTEGER NOT NULL DEFAULT 0 CHECK (settled IN (0, 1)),
        PRIMARY KEY (coin_id, version)
    )
    """,
    """
    INSERT INTO claim_fee_versions (coin_id, version, spend_bundle, fee, created_at, height, settled)
    SELECT coin_id, 1, fee_spend_bundle, fee, submitted_at, submitted_height, FALSE FROM reward_claims
    WHERE fee_spend_bundle IS NOT NULL AND NOT fee_settled
    """,
    # The claims of one absorb share its bundle's name: a new version renames them together.
    "CREATE INDEX reward_claims_bundle ON reward_claims (spend_bundle_name)",
)


_SCHEMA_V10_LEADER_SEEN: Migration = (
    # When the leader last said it leads (every few seconds while it does): readiness (GET /readyz) of every process
    # needs a leader, and only the store is shared by all of them.
    "ALTER TABLE leadership ADD COLUMN seen_at INTEGER NOT NULL DEFAULT 0",
)


_SCHEMA_V11_PARTIAL_HOURS: Migration = (
    # Partials and refusals older than partials.retention_days, counted per farmer, hour and outcome (as
    # partial_counts names them) when they are pruned: n partials, the sum of their difficulties, how many were
    # settled stale.
    """
    CREATE TABLE partial_hours (
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        hour INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        n INTEGER NOT NULL CHECK (n >= 0),
        points INTEGER NOT NULL CHECK (points >= 0),
        stale INTEGER NOT NULL CHECK (stale >= 0),
        PRIMARY KEY (launcher_id, hour, outcome)
    )
    """,
    "CREATE INDEX partial_hours_hour ON partial_hours (hour)",
)


_SCHEMA_V12_FARMER_HISTORY: Migration = (
    # The operator's ban (the farmer's requests refused, what it is owed still paid), and every change of a farmer's
    # settings or standing, kept for good: joins, payout instructions and authentication keys changed by PUT
    # /farmer, the operator's difficulty, bans. Farmers that joined before get their join.
    "ALTER TABLE farmers ADD COLUMN banned_at INTEGER",
    "ALTER TABLE farmers ADD COLUMN ban_reason TEXT",
    """
    CREATE TABLE farmer_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        at INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (
            kind IN ('joined', 'payout_instructions', 'authentication_key', 'difficulty_set', 'banned', 'unbanned')
        ),
        old TEXT,
        new TEXT
    )
    """,
    "CREATE INDEX farmer_history_launcher ON farmer_history (launcher_id, id)",
    "INSERT INTO farmer_history (launcher_id, at, kind, new) SELECT launcher_id, joined_at, 'joined', "
    "payout_instructions FROM farmers ORDER BY joined_at, launcher_id",
)


_SCHEMA_V13_POOL_SECRETS: Migration = (
    # Secrets of the pool shared by every process and host through the store: the key Pool Protocol v2 tokens are
    # MACed with (created once, by whichever process needs it first).
    """
    CREATE TABLE pool_secrets (
        name TEXT PRIMARY KEY,
        secret BLOB NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
)


# Bounded reads (pages, /status): one farmer's payouts and earnings by index, a round's payments by index, the pool
# fee earned from the few distribution entries, the farmers with an owed balance without reading the others, and the
# blocks won newest first. running_totals keeps sums the pages show that would otherwise read every payment:
# farmers_paid, the farmer payments of confirmed batches (added to as each batch is confirmed).
_SCHEMA_V14_BOUNDED_READS: Migration = (
    "CREATE INDEX distribution_shares_launcher ON distribution_shares (launcher_id, distribution_id)",
    "CREATE INDEX payments_round ON payments (round_id, batch_index)",
    "CREATE INDEX ledger_entries_kind ON ledger_entries (kind, amount)",
    "CREATE INDEX farmers_owed ON farmers (owed) WHERE owed > 0",
    "CREATE INDEX reward_claims_height ON reward_claims (coin_height)",
    "CREATE TABLE running_totals (name TEXT PRIMARY KEY, total INTEGER NOT NULL CHECK (total >= 0))",
    """
    INSERT INTO running_totals (name, total)
    SELECT 'farmers_paid', COALESCE(SUM(p.amount), 0) FROM payments p JOIN payment_batches b
        ON b.round_id = p.round_id AND b.batch_index = p.batch_index
        WHERE b.status = 'confirmed' AND p.launcher_id IS NOT NULL
    """,
)


_SCHEMA_V15_NOTIFICATIONS: Migration = (
    # The outbox: an event is written in the transaction of the change it tells, with a key naming the event (a
    # second write of the same event is ignored); the leader delivers it at least once to each destination, and the
    # key lets a receiver accept it once. A destination that answered 2xx has a row in notification_deliveries.
    """
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        launcher_id BLOB,
        to_operator INTEGER NOT NULL CHECK (to_operator IN (0, 1)),
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at INTEGER NOT NULL,
        done_at INTEGER,
        last_error TEXT
    )
    """,
    "CREATE INDEX notifications_due ON notifications (done_at, next_attempt_at)",
    "CREATE INDEX notifications_kind ON notifications (kind, id)",
    """
    CREATE TABLE notification_deliveries (
        notification_id INTEGER NOT NULL REFERENCES notifications (id),
        destination TEXT NOT NULL,
        delivered_at INTEGER NOT NULL,
        PRIMARY KEY (notification_id, destination)
    )
    """,
    # What a farmer chose on its page (None: the pool's default), and every change of it, kept for good.
    """
    CREATE TABLE farmer_settings (
        launcher_id BLOB PRIMARY KEY REFERENCES farmers (launcher_id),
        min_payout INTEGER CHECK (min_payout >= 0),
        difficulty_preset INTEGER CHECK (difficulty_preset >= 1),
        webhook_url TEXT,
        updated_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE farmer_settings_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        changed_at INTEGER NOT NULL,
        setting TEXT NOT NULL,
        old_value TEXT,
        new_value TEXT
    )
    """,
    "CREATE INDEX farmer_settings_changes_launcher ON farmer_settings_changes (launcher_id, id)",
)


# What a block took on average when its claim was recorded (the network's difficulty and sub-slot iterations) and
# when the block was made (its coin's timestamp), for the exact effort of its round; NULL for claims recorded before.
_SCHEMA_V16_BLOCK_EFFORT: Migration = (
    "ALTER TABLE reward_claims ADD COLUMN network_difficulty INTEGER CHECK (network_difficulty > 0)",
    "ALTER TABLE reward_claims ADD COLUMN network_sub_slot_iters INTEGER CHECK (network_sub_slot_iters > 0)",
    "ALTER TABLE reward_claims ADD COLUMN coin_timestamp INTEGER",
)


# One audit of a farmer: the settings a farmer chooses on its page join farmer_history (the kinds min_payout,
# difficulty_preset and webhook_url, old -> new as text, None for the pool's default), and their former table's
# rows move into it. The history is rebuilt so that its ids follow time across both former tables (pages list
# it by id): by time, then a farmer's own change before a settings change of the same second.
_SCHEMA_V17_ONE_FARMER_HISTORY: Migration = (
    """
    CREATE TABLE farmer_history_v17 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        at INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (
            kind IN (
                'joined', 'payout_instructions', 'authentication_key', 'difficulty_set', 'banned', 'unbanned',
                'min_payout', 'difficulty_preset', 'webhook_url'
            )
        ),
        old TEXT,
        new TEXT
    )
    """,
    """
    INSERT INTO farmer_history_v17 (id, launcher_id, at, kind, old, new)
    SELECT ROW_NUMBER() OVER (ORDER BY at, source, id), launcher_id, at, kind, old, new FROM (
        SELECT id, launcher_id, at, kind, old, new, 0 AS source FROM farmer_history
        UNION ALL
        SELECT id, launcher_id, changed_at, setting, old_value, new_value, 1 FROM farmer_settings_changes
    ) AS changes
    """,
    "DROP TABLE farmer_history",
    "DROP TABLE farmer_settings_changes",
    "ALTER TABLE farmer_history_v17 RENAME TO farmer_history",
    "CREATE INDEX farmer_history_launcher ON farmer_history (launcher_id, id)",
)


# The difficulty loop's summaries read each member's partials of the last time_target (received_at, difficulty):
# with the difficulty in the index they are read from the index alone, never from the table's rows. It replaces the
# (launcher_id, received_at) index, whose every use it serves.
_SCHEMA_V18_DIFFICULTY_INDEX: Migration = (
    "CREATE INDEX partials_launcher_received_difficulty ON partials (launcher_id, received_at, difficulty)",
    "DROP INDEX partials_launcher_received",
)


# What the difficulty loop's summaries read, kept as partials are recorded: per farmer, hour and difficulty, how many
# partials and the first and last second among them. A summary then reads a few rows a farmer for whole hours and
# only the partials of the hour its run starts in, instead of every partial of the last time_target (300 a farmer at
# the default target: six million index entries a pass at ten thousand farmers). A trigger keeps it in the insert's
# own statement, so the intake's one-statement group commit stays one statement and no path that records a partial
# can miss it. Kept as long as the partials (pruned at the same cutoff).
_SCHEMA_V19_DIFFICULTY_HOURS: Migration = (
    """
    CREATE TABLE difficulty_hours (
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        hour INTEGER NOT NULL,
        difficulty INTEGER NOT NULL,
        n INTEGER NOT NULL CHECK (n > 0),
        first_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (launcher_id, hour, difficulty)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX difficulty_hours_hour ON difficulty_hours (hour)",
    """
    INSERT INTO difficulty_hours (launcher_id, hour, difficulty, n, first_at, last_at)
    SELECT launcher_id, received_at - received_at % 3600, difficulty, COUNT(*), MIN(received_at), MAX(received_at)
    FROM partials GROUP BY 1, 2, 3
    """,
    """
    CREATE TRIGGER partials_difficulty_hours AFTER INSERT ON partials BEGIN
        INSERT INTO difficulty_hours (launcher_id, hour, difficulty, n, first_at, last_at)
        VALUES (
            NEW.launcher_id, NEW.received_at - NEW.received_at % 3600, NEW.difficulty, 1, NEW.received_at,
            NEW.received_at
        )
        ON CONFLICT (launcher_id, hour, difficulty) DO UPDATE SET
            n = n + 1, first_at = MIN(first_at, excluded.first_at), last_at = MAX(last_at, excluded.last_at);
    END
    """,
)


# What the PPLNS window reads, kept as partials are confirmed: per farmer and hour, how many partials were confirmed
# and their points. The window then reads a row a farmer for each whole hour and only the hour it starts in partial by
# partial, instead of every confirmed partial of the window (3 million a day at ten thousand farmers). The store's
# confirmation adds to it in the statement after the one that confirms, and the retention's prune takes a pruned
# confirmed partial out of it, each in the same transaction: it always holds exactly the confirmed partials still kept
# row by row. Keyed by farmer first: the window seeks each farmer's hours, in farmer order, and sums them with no sort
# (keyed by hour, SQLite sorted a day's 240 000 rows at ten thousand farmers: 0.2 s, against 0.1 s). An upgrade
# counts the partials confirmed before it (hours as Python's floor division makes them, as the store does).
_SCHEMA_V20_CONFIRMED_HOURS: Migration = (
    """
    CREATE TABLE confirmed_hours (
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        hour INTEGER NOT NULL,
        n INTEGER NOT NULL CHECK (n >= 0),
        points INTEGER NOT NULL CHECK (points >= 0),
        PRIMARY KEY (launcher_id, hour)
    ) WITHOUT ROWID
    """,
    """
    INSERT INTO confirmed_hours (launcher_id, hour, n, points)
    SELECT launcher_id, received_at - ((received_at % 3600) + 3600) % 3600, COUNT(*), SUM(difficulty)
    FROM partials WHERE status = 'confirmed' GROUP BY 1, 2
    """,
)


# The pool's accepted points of a settled span (a block's round on the pages and the API, the round so far) from the
# confirmed partials' hourly counts: every farmer's row of each whole hour, found by hour, its points in the index
# (no look-up of the row). Summing a day's 3 million partials at ten thousand farmers took a second of a reading
# connection (the API's 50 newest blocks' rounds, some 15 s of it after each start on a month's store); the day's
# 240 000 hourly rows take 40 ms. The PPLNS window keeps seeking each farmer's hours in the key (same plan).
_SCHEMA_V21_CONFIRMED_HOURS_BY_HOUR: Migration = (
    "CREATE INDEX confirmed_hours_hour ON confirmed_hours (hour, points)",
)


# What the ledger reads of the payments, as running totals kept in the same transaction as the payments themselves
# (payments are only ever inserted, by create_payout_round): every farmer payment recorded and every payment to the
# pool's fee address. Summing the payments table on each read grew with the pool's history: 28 ms at 30 days of
# 10 000 farmers, some 0.8 s a year of rounds every two hours to 2 000 farmers, and the books are read several
# times every 5 s (the payouts loop, /metrics, /status). Seeded from the payments recorded before the step.
_SCHEMA_V22_PAYMENT_TOTALS: Migration = (
    """
    INSERT INTO running_totals (name, total)
    SELECT 'farmer_payments', COALESCE(SUM(amount), 0) FROM payments WHERE launcher_id IS NOT NULL
    """,
    """
    INSERT INTO running_totals (name, total)
    SELECT 'pool_fee_payments', COALESCE(SUM(amount), 0) FROM payments WHERE launcher_id IS NULL
    """,
)


# The pool's partials of the day per hour and outcome (the pool page, /status, the operator's figures) for a settled
# span: the confirmed ones of its whole hours from their hourly counts, the count in the index beside the points (no
# look-up of each row). Counting a day's 3 million partials at ten thousand farmers held a reading connection for
# 3-4 s at each start. Replaces step 21's index (hour, points), whose reads this one serves as well.
_SCHEMA_V23_CONFIRMED_HOURS_COUNTS: Migration = (
    "CREATE INDEX confirmed_hours_hour_counts ON confirmed_hours (hour, points, n)",
    "DROP INDEX confirmed_hours_hour",
)


# How many farmers each payout round pays, written with its payments (which are only ever inserted, by
# create_payout_round): the pages and the API listed rounds with COUNT(DISTINCT launcher_id) over each round's payments,
# 10 000 rows a round at ten thousand farmers, 36 ms a page of rounds on the 30-day store, made again every few seconds
# while the pool page is watched. Seeded from the payments recorded before the step.
# And the farmers' pool-wide figures (the points every farmer page shows the farmer's share of, /metrics' members and
# points, the public page's, the books' owed) from an index that holds them: a sum over the table read every farmer's
# whole row (2.4 ms a farmer page at ten thousand farmers, measured; the index is a few dozen pages).
_SCHEMA_V24_ROUND_FARMERS: Migration = (
    "ALTER TABLE payout_rounds ADD COLUMN farmers_paid INTEGER NOT NULL DEFAULT 0 CHECK (farmers_paid >= 0)",
    """
    UPDATE payout_rounds SET farmers_paid = (
        SELECT COUNT(DISTINCT launcher_id) FROM payments WHERE payments.round_id = payout_rounds.id
    )
    """,
    "CREATE INDEX farmers_figures ON farmers (is_pool_member, points, owed)",
)


# A proof's key (partials.proof_hash) starts with its signage point's hash since this step (pool.protocol.partials.
# proof_identity), so that the unique index takes new partials beside those of the same signage point instead of at a
# random place. The partials recorded in the last hour get the new key too, made from what they hold (the old key was
# the proof's whole hash, the new one its first 24 bytes after the signage point's first 8): a copy of one of them
# sent again after the upgrade is still found. Older ones cannot come again: a partial is refused once its signage
# point is partials.time_limit (at most 300 s) old. Their keys stay as they were until they are pruned.
# From then on the store refuses a partial keyed otherwise: a process of an older version still running beside the
# upgraded ones (a rolling upgrade) would record a proof sent to both twice, once under each key.
_SCHEMA_V25_PROOF_KEYS: Migration = (
    """
    UPDATE partials SET proof_hash = CAST(substr(sp_hash, 1, 8) || substr(proof_hash, 1, 24) AS BLOB)
    WHERE received_at >= CAST(strftime('%s', 'now') AS INTEGER) - 3600
    """,
    """
    CREATE TRIGGER partials_proof_key BEFORE INSERT ON partials
    WHEN substr(NEW.proof_hash, 1, 8) IS NOT substr(NEW.sp_hash, 1, 8) BEGIN
        SELECT RAISE(ABORT, 'a partial''s proof key must start with its signage point (schema version 25)');
    END
    """,
)


MIGRATIONS: tuple[Migration, ...] = (
    _SCHEMA_V1,
    _SCHEMA_V2_LEDGER,
    _SCHEMA_V3_MEMBERSHIP,
    _SCHEMA_V4_PAGES,
    _SCHEMA_V5_CHAIN_TRUTH,
    _SCHEMA_V6_TARGET_PROOF,
    _SCHEMA_V7_DIFFICULTY_HISTORY,
    _SCHEMA_V8_SESSIONS_PER_FARMER,
    _SCHEMA_V9_CLAIM_FEE_VERSIONS,
    _SCHEMA_V10_LEADER_SEEN,
    _SCHEMA_V11_PARTIAL_HOURS,
    _SCHEMA_V12_FARMER_HISTORY,
    _SCHEMA_V13_POOL_SECRETS,
    _SCHEMA_V14_BOUNDED_READS,
    _SCHEMA_V15_NOTIFICATIONS,
    _SCHEMA_V16_BLOCK_EFFORT,
    _SCHEMA_V17_ONE_FARMER_HISTORY,
    _SCHEMA_V18_DIFFICULTY_INDEX,
    _SCHEMA_V19_DIFFICULTY_HOURS,
    _SCHEMA_V20_CONFIRMED_HOURS,
    _SCHEMA_V21_CONFIRMED_HOURS_BY_HOUR,
    _SCHEMA_V22_PAYMENT_TOTALS,
    _SCHEMA_V23_CONFIRMED_HOURS_COUNTS,
    _SCHEMA_V24_ROUND_FARMERS,
    _SCHEMA_V25_PROOF_KEYS,
)
"""MIGRATIONS[i] upgrades a database of version i to version i + 1. Append only: never edit a released step."""
