namespace Memo.Ingest.Sequencing;

/// <summary>
/// The sequencer's SQL. <see cref="Drain"/> is one statement (so one snapshot and one implicit transaction) that
/// takes the oldest inbox records of the shards this session owns, deletes them, and projects them:
/// <list type="number">
/// <item>keeps one copy of each message and status event and the last of each contact (retries and repeats inside the
/// batch), and drops what is already stored (index probes through LATERAL … LIMIT 1, which no estimate can turn into
/// a scan of a large table);</item>
/// <item>numbers every event per account in arrival order (inbox id), continuing from <c>accounts.last_seq</c> as this
/// snapshot sees it. The caller holds the shard's advisory lock, so no other session writes these accounts: the
/// snapshot is current, seqs of an account are assigned by one session at a time, and they become visible in commit
/// order (the accounts upsert also locks each row, and <c>account_events</c>' primary key refuses a seq given twice);</item>
/// <item>writes each table once per key (PostgreSQL refuses to touch one row twice in a statement, so a message and
/// its statuses from the same batch are merged into one messages row first), and appends the events to the log;</item>
/// <item>returns the events, per account in seq order, each with the item of the row it names as this statement left
/// it (from the projections' RETURNING, or for a status that changed nothing, the row as it was), so that live
/// events are encoded from memory and never read back; every row also carries the round's summary (records taken,
/// the oldest one's age in µs, how many were messages or statuses), and a round without events is that one row.</item>
/// </list>
/// Parameters: $1 the owned shards (smallint[]), $2 the most live records to take, $3 the most history records. The
/// sequencer runs it with one of the two at 0: live and history records are never taken by the same statement. Most
/// live rounds run <see cref="DrainPlain"/> instead, the same statement without the coexistence parts.
/// Each statement starts with a comment that names it (<see cref="StatementMarker"/>).
/// </summary>
internal static class SequencerSql
{
    /// <summary>Shards of accounts; fixed by the inbox's generated <c>shard</c> column (migration 0003).</summary>
    public const int ShardCount = 64;

    /// <summary>
    /// How every sequencer statement starts: a comment that goes on to name it. pg_stat_activity shows only a
    /// statement's first kilobyte (track_activity_query_size), where the three look alike, and tools find the
    /// sequencer's sessions by it (the load tool's <c>Run/SequencerBackends.cs</c>).
    /// </summary>
    public const string StatementMarker = """
        -- memo sequencer:
        """;

    // Advisory lock key spaces (the two-int form, "MEM1" and "MEM4" in ASCII): one lock per shard, one per live
    // sequencer session. Strings, so that the statements below stay constants. Sessions that took shards by
    // `shard % members` (before migration 0012) held member slots in "MEM2": a session of theirs is no member here, so
    // during a rolling upgrade the leader never assigns a shard to one that would not take it (DECISIONS 38). "MEM3" is
    // the outbox's account leases (Outbox/OutboxSender.cs); the twenty-third session's member slots were there too, so
    // that every leased account looked like a sequencer session to the leader.
    private const string ShardLockSpace = "1296387377";
    private const string MemberLockSpace = "1296387380";

    /// <summary>Member slots a session may take: 0 to this − 1 (<see cref="JoinMembers"/>).</summary>
    private const string MemberSlots = "1024";

    /// <summary>
    /// The general statement: live records of every kind (with $3 = 0) or a slice of the history backfill (with $2 = 0).
    /// Live traffic without coexistence records goes through <see cref="DrainPlain"/>, which shares its parts (the
    /// fragments below) and writes the same rows for such records.
    /// </summary>
    public const string Drain = $$"""
        {{StatementMarker}} general round (Drain)
        WITH taken AS (
            DELETE FROM inbox
            -- Live records first, then at most $3 of the history backfill (partial indexes inbox_live, inbox_history).
            WHERE ctid = ANY (ARRAY((SELECT ctid FROM inbox WHERE shard = ANY ($1::int[]) AND flags & 3 <> 2 ORDER BY id LIMIT $2)
                                    UNION ALL
                                    (SELECT ctid FROM inbox WHERE shard = ANY ($1::int[]) AND flags & 3 = 2 ORDER BY id LIMIT $3)))
            RETURNING id, kind, flags, account, display_phone, waba_id, msg_id, wa_id, contact, to_id, hstatus, ts, type, body,
                      context_id, errors, payload, received_at
        ), candidates AS (
            SELECT t.*, row_number() OVER (
                       PARTITION BY t.kind, t.account, CASE WHEN t.kind = 3 THEN t.wa_id WHEN t.kind = 5 THEN t.contact ELSE t.msg_id END,
                                    CASE WHEN t.kind = 2 THEN t.type WHEN t.kind = 1 THEN (t.type IS NOT DISTINCT FROM 'media_placeholder')::text END,
                                    CASE WHEN t.kind = 2 THEN t.ts END
                       ORDER BY CASE WHEN t.kind = 5 THEN t.ts END DESC NULLS LAST,
                                CASE WHEN t.kind IN (3, 5) THEN -t.id ELSE t.id END) AS copy
            FROM taken t
            WHERE t.kind IN (1, 2, 3, 5)
        ), fresh AS (
            SELECT c.*, p.completes FROM candidates c
        {{MessageProbe}}
            -- A media follow-up completing its placeholder, or a placeholder arriving after its follow-up: the row's
            -- second half, not a new message.
            LEFT JOIN LATERAL (SELECT true AS completes FROM messages m
                               WHERE c.kind = 1 AND c.flags & 3 = 2 AND m.account = c.account AND m.wamid = c.msg_id
                                 AND (m.type = 'media_placeholder' AND c.type IS DISTINCT FROM 'media_placeholder'
                                      OR m.followup_first AND c.type = 'media_placeholder') LIMIT 1) p ON true
        {{StatusAndContactProbes}}
            LEFT JOIN LATERAL (SELECT 1 AS hit FROM contact_book b
                               WHERE c.kind = 5 AND b.account = c.account AND b.contact = c.contact
                                 AND (b.book_ts > c.ts
                                      OR b.book_ts = c.ts AND (c.type = 'remove' AND b.removed
                                                               OR c.type <> 'remove' AND NOT b.removed AND b.full_name IS NOT DISTINCT FROM c.body
                                                                  AND b.first_name IS NOT DISTINCT FROM c.context_id)) LIMIT 1) b ON true
            WHERE c.copy = 1 AND m.hit IS NULL AND s.hit IS NULL AND k.hit IS NULL AND b.hit IS NULL
        ), edits AS (
            -- Edits and revokes of this round, one row per original: the newest edit's text, and whether any revoked it.
            SELECT account, context_id AS original, min(id) AS ord,
                   (array_agg(body ORDER BY ts DESC, id DESC) FILTER (WHERE type = 'edit'))[1] AS edited_text,
                   max(ts) FILTER (WHERE type = 'edit') AS edited_ts,
                   bool_or(type = 'revoke') AS revoked
            FROM fresh
            WHERE kind = 1 AND type IN ('edit', 'revoke') AND context_id IS NOT NULL
            GROUP BY account, context_id
        ), conversation_changes AS (
            SELECT account, contact, id, n, unread, last_wamid, last_ts, last_type, last_body
            FROM (SELECT f.account, f.contact, f.id,
                         count(*) OVER contact AS n,
                         count(*) FILTER (WHERE f.flags = 0) OVER contact AS unread,
        {{ConversationNewest}}
                  FROM fresh f
                  WHERE f.kind = 1 AND f.contact IS NOT NULL AND f.completes IS NULL
                  WINDOW contact AS (PARTITION BY f.account, f.contact),
                         newest AS (PARTITION BY f.account, f.contact ORDER BY f.ts DESC, f.id DESC)) x
            WHERE x.id = x.last_id
        ), planned AS (
            SELECT account, CASE WHEN completes THEN 7 ELSE kind END AS event_kind, id AS ord,
                   CASE WHEN kind = 3 THEN wa_id WHEN kind = 5 THEN contact ELSE msg_id END AS key,
                   wa_id, ts, type, body, context_id, errors, payload, flags, contact, to_id, hstatus,
                   NULL::text AS last_wamid, NULL::bigint AS n, NULL::bigint AS unread
            FROM fresh
            UNION ALL
            SELECT account, 4, id, contact, NULL, last_ts, last_type, last_body, NULL, NULL, NULL, NULL, NULL, NULL, NULL, last_wamid, n, unread
            FROM conversation_changes
            UNION ALL
            SELECT account, 6, min(id), 'history', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            FROM taken WHERE kind = 6 GROUP BY account
            UNION ALL
            SELECT account, 7, ord, original, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 8, NULL, NULL, NULL, NULL, NULL, NULL
            FROM edits
        {{Numbering}}
        {{NewestStatuses}}
        ), history AS (
            SELECT t.account, max(t.ts) AS progress, bool_or(t.type = 'declined') AS declined,
                   (array_agg(t.errors ORDER BY t.id DESC) FILTER (WHERE t.type = 'declined'))[1] AS errors,
                   (array_agg(t.msg_id::bigint ORDER BY t.id DESC) FILTER (WHERE t.msg_id IS NOT NULL))[1] AS phase,
                   (array_agg(t.wa_id::bigint ORDER BY t.id DESC) FILTER (WHERE t.wa_id IS NOT NULL))[1] AS chunk,
                   max(n.seq) AS seq
            FROM taken t
            JOIN numbered n ON n.event_kind = 6 AND n.account = t.account
            WHERE t.kind = 6
            GROUP BY t.account
        ), history_chunk_rows AS (
            INSERT INTO history_chunks (account, phase, chunk_order, progress)
            SELECT DISTINCT ON (account, msg_id::bigint, wa_id::bigint) account, msg_id::bigint, wa_id::bigint, ts::smallint
            FROM taken
            WHERE kind = 6 AND type = 'chunk' AND msg_id IS NOT NULL AND wa_id IS NOT NULL
            ORDER BY account, msg_id::bigint, wa_id::bigint, id
            ON CONFLICT DO NOTHING
        ), advanced AS (
            INSERT INTO accounts AS a (phone_number_id, display_phone_number, waba_id, last_seq,
                                       history_state, history_progress, history_phase, history_chunk, history_errors, history_seq)
            SELECT x.account, max(x.display_phone), max(x.waba_id), sum(x.n),
                   CASE WHEN h.declined THEN 'declined' WHEN h.progress >= 100 THEN 'completed' WHEN h.account IS NOT NULL THEN 'receiving' END,
                   h.progress, h.phase, h.chunk, h.errors, h.seq
            FROM (SELECT account, display_phone, waba_id, 0 AS n FROM taken WHERE kind <> 4
                  UNION ALL
                  SELECT account, NULL, NULL, 1 FROM numbered) x
            LEFT JOIN history h ON h.account = x.account
            GROUP BY x.account, h.account, h.declined, h.progress, h.phase, h.chunk, h.errors, h.seq
            ON CONFLICT (phone_number_id) DO UPDATE
            SET last_seq = a.last_seq + EXCLUDED.last_seq,
                display_phone_number = COALESCE(EXCLUDED.display_phone_number, a.display_phone_number),
                waba_id = COALESCE(EXCLUDED.waba_id, a.waba_id),
                history_state = CASE WHEN EXCLUDED.history_state IS NULL THEN a.history_state
                                     WHEN EXCLUDED.history_state = 'declined' THEN 'declined'
                                     WHEN GREATEST(a.history_progress, EXCLUDED.history_progress) >= 100 THEN 'completed'
                                     WHEN a.history_state = 'declined' AND EXCLUDED.history_progress IS NULL THEN 'declined'
                                     ELSE 'receiving' END,
                history_progress = GREATEST(a.history_progress, EXCLUDED.history_progress),
                history_phase = COALESCE(EXCLUDED.history_phase, a.history_phase),
                history_chunk = COALESCE(EXCLUDED.history_chunk, a.history_chunk),
                history_errors = COALESCE(EXCLUDED.history_errors, a.history_errors),
                history_seq = COALESCE(EXCLUDED.history_seq, a.history_seq)
            WHERE EXCLUDED.last_seq > 0
               OR EXCLUDED.display_phone_number IS DISTINCT FROM a.display_phone_number AND EXCLUDED.display_phone_number IS NOT NULL
               OR EXCLUDED.waba_id IS DISTINCT FROM a.waba_id AND EXCLUDED.waba_id IS NOT NULL
            RETURNING a.phone_number_id, a.history_state, a.history_progress, a.history_phase, a.history_chunk, a.history_errors
        ), message_rows AS (
            INSERT INTO messages AS m (account, wamid, seq, direction, from_wa_id, to_wa_id, ts, type, body, context_id, payload,
                                       status, status_rank, status_ts, status_errors, origin, contact, edited_text, edited_ts, revoked,
                                       followup_first, sent_wamid)
            SELECT g.account, key, seq,
                   CASE WHEN payload IS NULL OR outbound THEN 'outbound' ELSE 'inbound' END,
                   from_wa_id, COALESCE(sent_to, status_to), ts, type, body, context_id, payload,
                   CASE WHEN own_status IS NOT NULL AND memo_status_rank(own_status) > COALESCE(memo_status_rank(status), -1) THEN own_status ELSE status END,
                   CASE WHEN own_status IS NOT NULL AND memo_status_rank(own_status) > COALESCE(memo_status_rank(status), -1) THEN memo_status_rank(own_status)
                        WHEN status IS NOT NULL THEN memo_status_rank(status) END,
                   CASE WHEN own_status IS NOT NULL AND memo_status_rank(own_status) > COALESCE(memo_status_rank(status), -1) THEN ts ELSE status_ts END,
                   CASE WHEN own_status IS NOT NULL AND memo_status_rank(own_status) > COALESCE(memo_status_rank(status), -1) THEN NULL ELSE status_errors END,
                   CASE origin WHEN 1 THEN 'echo' WHEN 2 THEN 'history' WHEN 3 THEN 'outbox' ELSE 'live' END, contact,
                   ed.edited_text, ed.edited_ts, COALESCE(ed.revoked, false), COALESCE(followup_only, false), sent_wamid
            FROM (SELECT account, key, max(seq) AS seq,
                         -- A history placeholder and its media follow-up in one round: the row keeps the placeholder's
                         -- parties and time and takes the follow-up's content.
                         COALESCE(bool_or(flags & 4 <> 0) FILTER (WHERE content AND placeholder),
                                  bool_or(flags & 4 <> 0) FILTER (WHERE content)) AS outbound,
                         COALESCE(max(flags & 3) FILTER (WHERE content AND placeholder), max(flags & 3) FILTER (WHERE content)) AS origin,
                         COALESCE(max(contact) FILTER (WHERE content AND placeholder), max(contact) FILTER (WHERE content)) AS contact,
                         COALESCE(max(wa_id) FILTER (WHERE content AND placeholder), max(wa_id) FILTER (WHERE content)) AS from_wa_id,
                         COALESCE(max(ts) FILTER (WHERE content AND placeholder), max(ts) FILTER (WHERE content)) AS ts,
                         COALESCE(max(type) FILTER (WHERE content AND NOT placeholder), max(type) FILTER (WHERE content)) AS type,
                         COALESCE(max(body) FILTER (WHERE content AND NOT placeholder), max(body) FILTER (WHERE content)) AS body,
                         COALESCE(max(context_id) FILTER (WHERE content AND NOT placeholder), max(context_id) FILTER (WHERE content)) AS context_id,
                         COALESCE((array_agg(payload) FILTER (WHERE content AND NOT placeholder))[1],
                                  (array_agg(payload) FILTER (WHERE content))[1]) AS payload,
                         max(to_id) FILTER (WHERE content) AS sent_to,
                         bool_and(flags & 16 <> 0) FILTER (WHERE content) AS followup_only,
                         max(lower(hstatus)) FILTER (WHERE content) AS own_status,
        {{SentWamidAggregate}}
                  FROM (SELECT *, event_kind IN (1, 7) AND COALESCE(flags & 8, 0) = 0 AS content,
                               type IS NOT DISTINCT FROM 'media_placeholder' AS placeholder
                        FROM numbered WHERE event_kind IN (1, 2, 7)) e
                  GROUP BY account, key) g
        {{NewestStatusJoin}}
            LEFT JOIN edits ed ON ed.account = g.account AND ed.original = g.key
            ON CONFLICT (account, wamid) DO UPDATE
            SET seq = EXCLUDED.seq,
                -- Who and when come from the first row with content (a status may have created the row before its
                -- echo arrived); what it says, from the newest (a media follow-up completes its placeholder in place).
                -- A placeholder that arrives after its media follow-up brings who and when, and keeps the media.
                direction = CASE WHEN (m.payload IS NULL OR m.followup_first AND EXCLUDED.type = 'media_placeholder') AND EXCLUDED.payload IS NOT NULL
                                 THEN EXCLUDED.direction ELSE m.direction END,
                from_wa_id = CASE WHEN (m.payload IS NULL OR m.followup_first AND EXCLUDED.type = 'media_placeholder') AND EXCLUDED.payload IS NOT NULL
                                  THEN EXCLUDED.from_wa_id ELSE m.from_wa_id END,
                ts = CASE WHEN (m.payload IS NULL OR m.followup_first AND EXCLUDED.type = 'media_placeholder') AND EXCLUDED.payload IS NOT NULL
                          THEN EXCLUDED.ts ELSE m.ts END,
                origin = CASE WHEN m.payload IS NULL AND EXCLUDED.payload IS NOT NULL THEN EXCLUDED.origin ELSE m.origin END,
                contact = CASE WHEN (m.payload IS NULL OR m.followup_first AND EXCLUDED.type = 'media_placeholder') AND EXCLUDED.payload IS NOT NULL
                               THEN EXCLUDED.contact ELSE m.contact END,
                type = CASE WHEN EXCLUDED.payload IS NULL OR m.followup_first AND EXCLUDED.type = 'media_placeholder' THEN m.type ELSE EXCLUDED.type END,
                body = CASE WHEN EXCLUDED.payload IS NULL OR m.followup_first AND EXCLUDED.type = 'media_placeholder' THEN m.body ELSE EXCLUDED.body END,
                context_id = CASE WHEN EXCLUDED.payload IS NULL OR m.followup_first AND EXCLUDED.type = 'media_placeholder'
                                  THEN m.context_id ELSE EXCLUDED.context_id END,
                payload = CASE WHEN m.followup_first AND EXCLUDED.type = 'media_placeholder' THEN m.payload ELSE COALESCE(EXCLUDED.payload, m.payload) END,
                followup_first = m.followup_first AND EXCLUDED.type IS DISTINCT FROM 'media_placeholder',
        {{StatusUpdate}}
                -- The newest edit wins, whatever order edits arrive in; a revoke is final.
                edited_text = CASE WHEN EXCLUDED.edited_ts >= COALESCE(m.edited_ts, 0) THEN EXCLUDED.edited_text ELSE m.edited_text END,
                edited_ts = GREATEST(m.edited_ts, EXCLUDED.edited_ts),
                revoked = m.revoked OR EXCLUDED.revoked,
                sent_wamid = COALESCE(m.sent_wamid, EXCLUDED.sent_wamid)
            WHERE EXCLUDED.payload IS NOT NULL OR EXCLUDED.status_rank > COALESCE(m.status_rank, -1)
               OR EXCLUDED.edited_ts IS NOT NULL OR EXCLUDED.revoked OR m.sent_wamid IS NULL AND EXCLUDED.sent_wamid IS NOT NULL
        {{MessageReturning}}
        {{StatusAndContactRows}}
        ), contact_book_rows AS (
            INSERT INTO contact_book AS b (account, contact, phone_number, full_name, first_name, removed, book_ts, seq)
            SELECT account, key, to_id, body, context_id, type = 'remove', COALESCE(ts, 0), seq FROM numbered WHERE event_kind = 5
            ON CONFLICT (account, contact) DO UPDATE
            SET phone_number = EXCLUDED.phone_number,
                full_name = CASE WHEN EXCLUDED.removed THEN b.full_name ELSE EXCLUDED.full_name END,
                first_name = CASE WHEN EXCLUDED.removed THEN b.first_name ELSE EXCLUDED.first_name END,
                removed = EXCLUDED.removed, book_ts = EXCLUDED.book_ts, seq = EXCLUDED.seq, updated_at = now()
            WHERE EXCLUDED.book_ts >= b.book_ts
            RETURNING b.account, b.seq, b.contact, b.phone_number, b.full_name, b.first_name, b.removed, b.book_ts
        {{ConversationAndLogRows}}
        ), summary AS (
            SELECT count(*)::bigint AS taken,
                   COALESCE((extract(epoch FROM clock_timestamp() - min(received_at)) * 1000000)::bigint, 0) AS oldest_us,
                   count(*) FILTER (WHERE kind IN (1, 2)) AS identified
            FROM taken
        )
        SELECT s.taken, s.oldest_us, s.identified, e.*, {{EventShard}}
        FROM summary s
        LEFT JOIN (
        {{ItemColumns}}
                   br.seq AS b_seq, br.contact AS b_contact, br.phone_number, br.full_name, br.first_name, br.removed, br.book_ts,
                   ar.history_state, ar.history_progress::bigint, ar.history_phase, ar.history_chunk, ar.history_errors
        {{ItemJoins}}
            LEFT JOIN contact_book_rows br ON n.event_kind = 5 AND br.account = n.account AND br.contact = n.key
            LEFT JOIN advanced ar ON n.event_kind = 6 AND ar.phone_number_id = n.account
        ) e ON true
        ORDER BY e.account, e.seq
        """;

    /// <summary>
    /// Live records that need <see cref="Drain"/>'s coexistence parts: the contact book and history sync state (kinds 5
    /// and 6), echoes, replies and anything the business sent (flags), edits, revokes and media placeholders, and the
    /// fields only those carry. Word for word the predicate of the partial index <c>inbox_general</c> (migration 0011),
    /// which finds the oldest of them with one probe.
    /// </summary>
    private const string NeedsGeneralStatement = """
        flags & 3 <> 2 AND (kind >= 5 OR flags <> 0 OR type IN ('edit', 'revoke', 'media_placeholder') OR hstatus IS NOT NULL OR to_id IS NOT NULL)
        """;

    /// <summary>
    /// <see cref="Drain"/> for live traffic without coexistence records: inbound messages, statuses, contact profiles and
    /// other account changes of live webhooks, which is nearly all of it. It takes the oldest live records up to the first
    /// one that <see cref="NeedsGeneralStatement"/> (so records are still numbered in arrival order), writes exactly what
    /// <see cref="Drain"/> would write for them, and returns the same rows, with one more column before the last (the
    /// shard): whether such a record is waiting, so that the sequencer runs <see cref="Drain"/> next. Without the echo,
    /// history, contact book, edit and placeholder parts, PostgreSQL starts and runs a smaller plan: measured with
    /// pgbench, interleaved in one run (bench/sequencer-statements.sh), 25-32 % less time per round of one message, 17-19 %
    /// for 20 and 8-10 % for 200 (docs/PERFORMANCE.md, "The write path against its own past").
    /// Parameters: $1 the owned shards, $2 the most live records to take.
    /// </summary>
    public const string DrainPlain = $$"""
        {{StatementMarker}} plain round (DrainPlain)
        {{PlainRound}}
        SELECT s.taken, s.oldest_us, s.identified, e.*, s.blocked, {{EventShard}}
        FROM summary s
        LEFT JOIN (
        {{ItemColumns}}
                   NULL::bigint AS b_seq, NULL::text AS b_contact, NULL::text AS phone_number, NULL::text AS full_name, NULL::text AS first_name,
                   NULL::boolean AS removed, NULL::bigint AS book_ts, NULL::text AS history_state, NULL::bigint AS history_progress,
                   NULL::bigint AS history_phase, NULL::bigint AS history_chunk, NULL::bytea AS history_errors
        {{ItemJoins}}
        ) e ON true
        ORDER BY e.account, e.seq
        """;

    /// <summary>
    /// <see cref="DrainPlain"/> returning its events without their items, for a round whose events nobody receives: no
    /// session on this instance follows an account, and no other instance listens (<see cref="Events.CommittedEventPublisher"/>).
    /// Same writes, same events; PostgreSQL neither pairs events with their rows nor sends the rows (17-22 % of the
    /// statement's time by pgbench, bench/sequencer-statements.sh). Its rows are in no particular order.
    /// Parameters: $1 the owned shards, $2 the most live records to take.
    /// </summary>
    public const string DrainPlainEventsOnly = $$"""
        {{StatementMarker}} plain round without items (DrainPlainEventsOnly)
        {{PlainRound}}
        SELECT s.taken, s.oldest_us, s.identified, e.*, s.blocked, {{EventShard}}
        FROM summary s
        LEFT JOIN (SELECT n.account, n.seq, n.event_kind::smallint AS kind FROM numbered n) e ON true
        """;

    /// <summary>
    /// The last column of every sequencer statement's rows: the shard of the event's account, the inbox's own expression
    /// (migration 0003), counted by the session to report how busy each shard is (<see cref="ShardAssignment"/>).
    /// </summary>
    private const string EventShard = """
        (hashtext(e.account) & 63)::int AS shard
        """;

    /// <summary><see cref="DrainPlain"/>'s round: everything but the rows it returns.</summary>
    private const string PlainRound = $$"""
        WITH barrier AS (
            SELECT min(id) AS id FROM inbox WHERE shard = ANY ($1::int[]) AND {{NeedsGeneralStatement}}
        ), taken AS (
            DELETE FROM inbox
            WHERE ctid = ANY (ARRAY(SELECT ctid FROM inbox
                                    WHERE shard = ANY ($1::int[]) AND flags & 3 <> 2 AND id < COALESCE((SELECT id FROM barrier), 9223372036854775807)
                                    ORDER BY id LIMIT $2))
            RETURNING id, kind, account, display_phone, waba_id, msg_id, wa_id, contact, ts, type, body, context_id, errors, payload, received_at
        ), candidates AS (
            SELECT t.*, row_number() OVER (
                       PARTITION BY t.kind, t.account, CASE WHEN t.kind = 3 THEN t.wa_id ELSE t.msg_id END,
                                    CASE WHEN t.kind = 2 THEN t.type END, CASE WHEN t.kind = 2 THEN t.ts END
                       ORDER BY CASE WHEN t.kind = 3 THEN -t.id ELSE t.id END) AS copy
            FROM taken t
            WHERE t.kind IN (1, 2, 3)
        ), fresh AS (
            SELECT c.* FROM candidates c
        {{MessageProbe}}
        {{StatusAndContactProbes}}
            WHERE c.copy = 1 AND m.hit IS NULL AND s.hit IS NULL AND k.hit IS NULL
        ), conversation_changes AS (
            -- Every record here is a live inbound message or status: each new message counts as unread.
            SELECT account, contact, id, n, last_wamid, last_ts, last_type, last_body
            FROM (SELECT f.account, f.contact, f.id,
                         count(*) OVER contact AS n,
        {{ConversationNewest}}
                  FROM fresh f
                  WHERE f.kind = 1 AND f.contact IS NOT NULL
                  WINDOW contact AS (PARTITION BY f.account, f.contact),
                         newest AS (PARTITION BY f.account, f.contact ORDER BY f.ts DESC, f.id DESC)) x
            WHERE x.id = x.last_id
        ), planned AS (
            SELECT account, kind AS event_kind, id AS ord, CASE WHEN kind = 3 THEN wa_id ELSE msg_id END AS key,
                   wa_id, ts, type, body, context_id, errors, payload, contact,
                   NULL::text AS last_wamid, NULL::bigint AS n, NULL::bigint AS unread
            FROM fresh
            UNION ALL
            SELECT account, 4, id, contact, NULL, last_ts, last_type, last_body, NULL, NULL, NULL, NULL, last_wamid, n, n
            FROM conversation_changes
        {{Numbering}}
        {{NewestStatuses}}
        ), advanced AS (
            INSERT INTO accounts AS a (phone_number_id, display_phone_number, waba_id, last_seq)
            SELECT account, max(display_phone), max(waba_id), sum(n)
            FROM (SELECT account, display_phone, waba_id, 0 AS n FROM taken WHERE kind <> 4
                  UNION ALL
                  SELECT account, NULL, NULL, 1 FROM numbered) x
            GROUP BY account
            ON CONFLICT (phone_number_id) DO UPDATE
            SET last_seq = a.last_seq + EXCLUDED.last_seq,
                display_phone_number = COALESCE(EXCLUDED.display_phone_number, a.display_phone_number),
                waba_id = COALESCE(EXCLUDED.waba_id, a.waba_id)
            WHERE EXCLUDED.last_seq > 0
               OR EXCLUDED.display_phone_number IS DISTINCT FROM a.display_phone_number AND EXCLUDED.display_phone_number IS NOT NULL
               OR EXCLUDED.waba_id IS DISTINCT FROM a.waba_id AND EXCLUDED.waba_id IS NOT NULL
        ), message_rows AS (
            INSERT INTO messages AS m (account, wamid, seq, direction, from_wa_id, to_wa_id, ts, type, body, context_id, payload,
                                       status, status_rank, status_ts, status_errors, contact, sent_wamid)
            SELECT account, key, seq, CASE WHEN payload IS NULL THEN 'outbound' ELSE 'inbound' END,
                   from_wa_id, status_to, ts, type, body, context_id, payload,
                   status, CASE WHEN status IS NOT NULL THEN memo_status_rank(status) END, status_ts, status_errors, contact, sent_wamid
            FROM (SELECT account, key, max(seq) AS seq,
                         max(contact) FILTER (WHERE event_kind = 1) AS contact,
                         max(wa_id) FILTER (WHERE event_kind = 1) AS from_wa_id,
                         max(ts) FILTER (WHERE event_kind = 1) AS ts,
                         max(type) FILTER (WHERE event_kind = 1) AS type,
                         max(body) FILTER (WHERE event_kind = 1) AS body,
                         max(context_id) FILTER (WHERE event_kind = 1) AS context_id,
                         (array_agg(payload) FILTER (WHERE event_kind = 1))[1] AS payload,
        {{SentWamidAggregate}}
                  FROM numbered
                  WHERE event_kind IN (1, 2)
                  GROUP BY account, key) g
        {{NewestStatusJoin}}
            ON CONFLICT (account, wamid) DO UPDATE
            -- Drain's update where the incoming row is a live inbound message or statuses (no placeholder, edit or revoke).
            SET seq = EXCLUDED.seq,
                direction = CASE WHEN m.payload IS NULL AND EXCLUDED.payload IS NOT NULL THEN EXCLUDED.direction ELSE m.direction END,
                from_wa_id = CASE WHEN m.payload IS NULL AND EXCLUDED.payload IS NOT NULL THEN EXCLUDED.from_wa_id ELSE m.from_wa_id END,
                ts = CASE WHEN m.payload IS NULL AND EXCLUDED.payload IS NOT NULL THEN EXCLUDED.ts ELSE m.ts END,
                origin = CASE WHEN m.payload IS NULL AND EXCLUDED.payload IS NOT NULL THEN EXCLUDED.origin ELSE m.origin END,
                contact = CASE WHEN m.payload IS NULL AND EXCLUDED.payload IS NOT NULL THEN EXCLUDED.contact ELSE m.contact END,
                type = CASE WHEN EXCLUDED.payload IS NULL THEN m.type ELSE EXCLUDED.type END,
                body = CASE WHEN EXCLUDED.payload IS NULL THEN m.body ELSE EXCLUDED.body END,
                context_id = CASE WHEN EXCLUDED.payload IS NULL THEN m.context_id ELSE EXCLUDED.context_id END,
                payload = COALESCE(EXCLUDED.payload, m.payload),
        {{StatusUpdate}}
                sent_wamid = COALESCE(m.sent_wamid, EXCLUDED.sent_wamid)
            WHERE EXCLUDED.payload IS NOT NULL OR EXCLUDED.status_rank > COALESCE(m.status_rank, -1)
               OR m.sent_wamid IS NULL AND EXCLUDED.sent_wamid IS NOT NULL
        {{MessageReturning}}
        {{StatusAndContactRows}}
        {{ConversationAndLogRows}}
        ), summary AS (
            SELECT count(*)::bigint AS taken,
                   COALESCE((extract(epoch FROM clock_timestamp() - min(received_at)) * 1000000)::bigint, 0) AS oldest_us,
                   count(*) FILTER (WHERE kind IN (1, 2)) AS identified,
                   (SELECT id FROM barrier) IS NOT NULL AS blocked
            FROM taken
        )
        """;

    /// <summary>Whether a message record is already stored (a placeholder and its media follow-up are two halves of one row, not copies).</summary>
    private const string MessageProbe = """
            LEFT JOIN LATERAL (SELECT 1 AS hit FROM messages m
                               WHERE c.kind = 1 AND m.account = c.account AND m.wamid = c.msg_id AND m.payload IS NOT NULL
                                 AND NOT (m.type = 'media_placeholder' AND c.type IS DISTINCT FROM 'media_placeholder')
                                 AND NOT (m.followup_first AND c.type = 'media_placeholder') LIMIT 1) m ON true
        """;

    /// <summary>Whether a status or a contact profile record is already stored.</summary>
    private const string StatusAndContactProbes = """
            LEFT JOIN LATERAL (SELECT 1 AS hit FROM message_statuses s
                               WHERE c.kind = 2 AND s.account = c.account AND s.wamid = c.msg_id AND s.status = c.type AND s.ts = c.ts LIMIT 1) s ON true
            LEFT JOIN LATERAL (SELECT 1 AS hit FROM contacts k
                               WHERE c.kind = 3 AND k.account = c.account AND k.wa_id = c.wa_id AND k.profile_name IS NOT DISTINCT FROM c.body LIMIT 1) k ON true
        """;

    /// <summary>
    /// A conversation's changes of the round: its last record (which carries the event), and its newest message by the
    /// message's own time (so that old history never moves a conversation back).
    /// </summary>
    private const string ConversationNewest = """
                         max(f.id) OVER contact AS last_id,
                         first_value(f.msg_id) OVER newest AS last_wamid,
                         first_value(f.ts) OVER newest AS last_ts,
                         first_value(f.type) OVER newest AS last_type,
                         first_value(f.body) OVER newest AS last_body
        """;

    /// <summary>
    /// Each event's seq: the account's next, in arrival order (inbox id), from <c>accounts.last_seq</c>, read once per
    /// account of the round rather than once per event (1-4 % less time per round of 200-1,000 messages, pgbench).
    /// </summary>
    private const string Numbering = """
        ), numbered AS (
            SELECT p.*, COALESCE(a.last_seq, 0) + row_number() OVER (PARTITION BY p.account ORDER BY p.ord, p.event_kind) AS seq
            FROM planned p
            LEFT JOIN (SELECT r.account, l.last_seq
                       FROM (SELECT DISTINCT account FROM taken) r
                       LEFT JOIN LATERAL (SELECT last_seq FROM accounts WHERE phone_number_id = r.account LIMIT 1) l ON true) a
                   ON a.account = p.account
        """;

    /// <summary>A reply's wamid, which its statuses carry (the sender's and Meta's, matched by biz_opaque_callback_data).</summary>
    private const string SentWamidAggregate = """
                         max(body) FILTER (WHERE event_kind = 2) AS sent_wamid
        """;

    /// <summary>
    /// Each message row's newest status of the round (by rank, then time) and its recipient, from one sort of the
    /// round's status events. Four ordered aggregates per message row did the same with four sorts per row, status or
    /// not: this form takes 5-7 % less time per round of 200-1,000 messages (pgbench, docs/PERFORMANCE.md).
    /// </summary>
    private const string NewestStatuses = """
        ), newest_statuses AS (
            SELECT DISTINCT ON (account, key) account AS status_account, key AS status_key, type AS status, ts AS status_ts,
                   errors AS status_errors, wa_id AS status_to
            FROM numbered
            WHERE event_kind = 2
            ORDER BY account, key, memo_status_rank(type) DESC, ts DESC, seq DESC
        """;

    /// <summary>A message row (its group of the round's events) and its newest status.</summary>
    private const string NewestStatusJoin = """
            LEFT JOIN newest_statuses ns ON ns.status_account = g.account AND ns.status_key = g.key
        """;

    /// <summary>Statuses only ever move a message's status forward (monotonic by rank).</summary>
    private const string StatusUpdate = """
                to_wa_id = COALESCE(m.to_wa_id, EXCLUDED.to_wa_id),
                status = CASE WHEN EXCLUDED.status_rank > COALESCE(m.status_rank, -1) THEN EXCLUDED.status ELSE m.status END,
                status_rank = CASE WHEN EXCLUDED.status_rank > COALESCE(m.status_rank, -1) THEN EXCLUDED.status_rank ELSE m.status_rank END,
                status_ts = CASE WHEN EXCLUDED.status_rank > COALESCE(m.status_rank, -1) THEN EXCLUDED.status_ts ELSE m.status_ts END,
                status_errors = CASE WHEN EXCLUDED.status_rank > COALESCE(m.status_rank, -1)
                                     THEN COALESCE(EXCLUDED.status_errors, m.status_errors) ELSE m.status_errors END,
        """;

    /// <summary>The message row as the statement left it: the item of its events.</summary>
    private const string MessageReturning = """
            RETURNING m.account, m.seq, m.wamid, m.direction, m.from_wa_id, m.to_wa_id, m.ts, m.type, m.body, m.context_id,
                      m.status, m.status_ts, m.status_errors, m.payload, m.origin, m.contact, m.edited_text, m.revoked, m.sent_wamid
        """;

    /// <summary>The status history (one row per status event) and the contact profiles.</summary>
    private const string StatusAndContactRows = """
        ), status_history AS (
            INSERT INTO message_statuses (account, wamid, status, ts, seq, recipient_id, errors, payload)
            SELECT account, key, type, ts, seq, wa_id, errors, payload FROM numbered WHERE event_kind = 2
        ), contact_rows AS (
            INSERT INTO contacts AS k (account, wa_id, profile_name, seq)
            SELECT account, key, body, seq FROM numbered WHERE event_kind = 3
            ON CONFLICT (account, wa_id) DO UPDATE SET profile_name = EXCLUDED.profile_name, seq = EXCLUDED.seq, updated_at = now()
            RETURNING k.account, k.seq, k.wa_id, k.profile_name
        """;

    /// <summary>Conversations, other account changes, and the event log (whose primary key refuses a seq given twice).</summary>
    private const string ConversationAndLogRows = """
        ), conversation_rows AS (
            INSERT INTO conversations AS c (account, wa_id, seq, message_count, unread_count, last_message_wamid, last_message_at,
                                            last_message_type, last_message_preview)
            SELECT account, key, seq, n, unread, last_wamid, ts, type, left(body, 200) FROM numbered WHERE event_kind = 4
            ON CONFLICT (account, wa_id) DO UPDATE
            SET seq = EXCLUDED.seq,
                message_count = c.message_count + EXCLUDED.message_count,
                unread_count = c.unread_count + EXCLUDED.unread_count,
                last_message_wamid = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at THEN EXCLUDED.last_message_wamid ELSE c.last_message_wamid END,
                last_message_type = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at THEN EXCLUDED.last_message_type ELSE c.last_message_type END,
                last_message_preview = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at THEN EXCLUDED.last_message_preview ELSE c.last_message_preview END,
                last_message_at = GREATEST(EXCLUDED.last_message_at, c.last_message_at),
                updated_at = now()
            RETURNING c.account, c.seq, c.wa_id, c.message_count, c.last_message_wamid, c.last_message_at, c.last_message_type,
                      c.last_message_preview, c.unread_count
        ), other_changes AS (
            INSERT INTO account_updates (waba_id, phone_number_id, field, payload, payload_md5)
            SELECT waba_id, account, type, payload, md5(COALESCE(payload, ''::bytea)) FROM taken WHERE kind = 4
            ON CONFLICT DO NOTHING
        ), logged AS (
            INSERT INTO account_events (account, seq, kind, key, status, ts)
            SELECT account, seq, event_kind, key, CASE WHEN event_kind = 2 THEN type END, CASE WHEN event_kind = 2 THEN ts END
            FROM numbered
        """;

    /// <summary>Each event and the item columns of the row it names (<see cref="Streams.StreamEventEncoder.Layout"/>).</summary>
    private const string ItemColumns = """
            SELECT n.account, n.seq, n.event_kind::smallint AS kind,
                   m.seq AS m_seq, m.wamid, m.direction, m.from_wa_id, m.to_wa_id, m.ts, m.type, m.body, m.context_id,
                   m.status, m.status_ts, m.status_errors, m.payload, m.origin, m.contact, m.edited_text, m.revoked, m.sent_wamid,
                   c.seq AS c_seq, c.wa_id AS c_wa_id, COALESCE(kr.profile_name, ko.profile_name) AS c_profile_name,
                   c.message_count, c.last_message_wamid, c.last_message_at, c.last_message_type, c.last_message_preview, c.unread_count,
                   kr.seq AS k_seq, kr.wa_id AS k_wa_id, kr.profile_name AS k_profile_name,
        """;

    /// <summary>Joins each event to the row it names: as the statement wrote it, or for a status that changed nothing, as it was.</summary>
    private const string ItemJoins = """
            FROM numbered n
            LEFT JOIN message_rows mr ON n.event_kind IN (1, 2, 7) AND mr.account = n.account AND mr.wamid = n.key
            LEFT JOIN LATERAL (
                SELECT mr.seq, mr.wamid, mr.direction, mr.from_wa_id, mr.to_wa_id, mr.ts, mr.type, mr.body, mr.context_id,
                       mr.status, mr.status_ts, mr.status_errors, mr.payload, mr.origin, mr.contact, mr.edited_text, mr.revoked, mr.sent_wamid
                WHERE mr.wamid IS NOT NULL
                UNION ALL
                (SELECT o.seq, o.wamid, o.direction, o.from_wa_id, o.to_wa_id, o.ts, o.type, o.body, o.context_id,
                        o.status, o.status_ts, o.status_errors, o.payload, o.origin, o.contact, o.edited_text, o.revoked, o.sent_wamid
                 FROM messages o
                 WHERE mr.wamid IS NULL AND n.event_kind IN (1, 2, 7) AND o.account = n.account AND o.wamid = n.key LIMIT 1)) m ON true
            LEFT JOIN conversation_rows c ON n.event_kind = 4 AND c.account = n.account AND c.wa_id = n.key
            LEFT JOIN contact_rows kr ON n.event_kind IN (3, 4) AND kr.account = n.account AND kr.wa_id = n.key
            LEFT JOIN LATERAL (SELECT ko.profile_name FROM contacts ko
                               WHERE kr.wa_id IS NULL AND n.event_kind = 4 AND ko.account = n.account AND ko.wa_id = n.key LIMIT 1) ko ON true
        """;

    /// <summary>
    /// Moves the single oldest record of the owned shards to <c>dead_letters</c> with the reason PostgreSQL gave for
    /// refusing it alone. $1 shards, $2 SQLSTATE, $3 reason, $4 whether the refused statement took history records (the
    /// oldest of that kind is the refused one; an older record of the other kind is innocent).
    /// </summary>
    public const string DeadLetterOldest = """
        WITH dead AS (
            DELETE FROM inbox
            WHERE ctid = ANY (ARRAY(SELECT ctid FROM inbox WHERE shard = ANY ($1::int[]) AND (flags & 3 = 2) = $4 ORDER BY id LIMIT 1))
            RETURNING *
        )
        INSERT INTO dead_letters (stage, sqlstate, reason, account, record, body, received_at)
        SELECT 'sequencer', $2, $3, account, to_jsonb(dead) - 'payload', payload, received_at FROM dead
        RETURNING account
        """;

    /// <summary>
    /// Takes the lowest free member slot of this database (none if 1,024 sessions hold one). Call once per session: a
    /// session that already holds a slot would take it again (advisory locks are re-entrant).
    /// </summary>
    public const string JoinMembers = $"""
        SELECT s FROM generate_series(0, {MemberSlots} - 1) AS s WHERE pg_try_advisory_lock({MemberLockSpace}, s) LIMIT 1
        """;

    /// <summary>
    /// The member slots held by live sequencer sessions of this database, in order; only slots a session can take, so
    /// that a lock anything else takes in the same space is never mistaken for a session (which the leader would give
    /// shards that nobody takes).
    /// </summary>
    public const string Members = $"""
        SELECT objid::int FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND classid = {MemberLockSpace} AND objsubid = 2 AND objid < {MemberSlots}
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY objid
        """;

    /// <summary>
    /// Reports the event rates of the shards this session holds ($1 shards, $2 events per second, $3 its member slot)
    /// and the records its live rounds took on average ($4, on each of those rows), and reads the whole assignment:
    /// every shard's assigned member slot, rate and round size (its own reports as they were before this statement).
    /// Rows are written in shard order, like <see cref="WriteAssignment"/>'s, so that the two never wait for each other
    /// in a cycle.
    /// </summary>
    public const string ReportAndReadAssignment = """
        WITH reported AS (
            INSERT INTO sequencer_shards (shard, member_slot, events_per_second, round_records)
            SELECT shard, $3, rate, $4 FROM unnest($1::int[], $2::real[]) AS r(shard, rate) ORDER BY shard
            ON CONFLICT (shard) DO UPDATE SET events_per_second = EXCLUDED.events_per_second, round_records = EXCLUDED.round_records
        )
        SELECT shard, member_slot, events_per_second, round_records FROM sequencer_shards
        """;

    /// <summary>The leader's assignment: $1 holds each shard's member slot, in shard order (shard 0 first).</summary>
    public const string WriteAssignment = """
        INSERT INTO sequencer_shards AS a (shard, member_slot)
        SELECT (n.position - 1)::int, n.slot FROM unnest($1::int[]) WITH ORDINALITY AS n(slot, position) ORDER BY n.position
        ON CONFLICT (shard) DO UPDATE SET member_slot = EXCLUDED.member_slot WHERE a.member_slot <> EXCLUDED.member_slot
        """;

    /// <summary>Tries to take the shards in $1 (none of which this session holds); returns those it now holds.</summary>
    public const string Acquire = $"SELECT s FROM unnest($1::int[]) AS s WHERE pg_try_advisory_lock({ShardLockSpace}, s)";

    /// <summary>Gives up the shards in $1.</summary>
    public const string Release = $"SELECT count(*) FROM unnest($1::int[]) AS s WHERE pg_advisory_unlock({ShardLockSpace}, s)";
}
