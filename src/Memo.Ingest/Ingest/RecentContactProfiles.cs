using Memo.Ingest.Webhooks.Parsing;

namespace Memo.Ingest.Ingest;

/// <summary>
/// The contact profiles (account, wa_id, profile name) this instance appended lately, so that an unchanged profile is
/// not appended again within <see cref="Configuration.IngestOptions.ContactProfileMemorySeconds"/>.
///
/// Meta sends the sender's profile with every inbound message, and it almost never changes: in the default load mix
/// half of the inbox records were such profiles, each appended, taken, probed and dropped by the sequencer because the
/// stored profile already said the same (docs/PERFORMANCE.md, "Unchanged contact profiles"). A profile is skipped only
/// when this instance committed the very same profile for the same contact within the memory, and only in a webhook
/// whose other records are appended (they carry the same account metadata). Skipping it changes nothing the sequencer
/// would have written: the earlier copy is in the inbox or already stored, and a later different name (A, B, A) is
/// never skipped, because each slot holds the last profile committed for its contact. What the memory cannot see is a
/// name committed by another instance in between; the memory's bound limits how long a name changed back that way
/// stays behind (docs/DECISIONS.md).
///
/// A direct-mapped table of 64-bit entries (128 KiB): a slot chosen by the contact holds 48 bits of a hash of contact
/// and name and 16 bits of the coarse time it was noted. Writers share it without locks: 64-bit writes are atomic, and
/// an evicted slot only means one profile appended more. Two writers noting two names of one contact at the same moment
/// may leave the older one noted: the same bounded lag as a name changed back through another instance.
/// </summary>
internal sealed class RecentContactProfiles
{
    private const int Slots = 1 << 14;

    // Coarse time: units of 2^TimeShift milliseconds (about a second), 16 bits of it kept in each entry.
    private const int TimeShift = 10;
    private const long TimeMask = 0xFFFF;

    private readonly long[] _table = new long[Slots];
    private readonly long _memoryUnits;

    /// <param name="memorySeconds">How long a noted profile suppresses identical ones; 0 turns skipping off.</param>
    public RecentContactProfiles(int memorySeconds)
    {
        // The 16-bit time wraps after about 18 hours; anything longer would compare wrapped times.
        _memoryUnits = Math.Clamp(memorySeconds, 0, 3600) * 1000L >> TimeShift;
    }

    public bool Enabled => _memoryUnits > 0;

    /// <summary>
    /// Marks <see cref="StagedRecord.Screened"/> every contact profile of <paramref name="batch"/> that this instance
    /// committed unchanged within the memory, in webhooks that append another record. Returns how many were marked.
    /// </summary>
    public int SkipUnchanged(List<ParsedWebhook> batch, long nowMilliseconds)
    {
        if (!Enabled)
        {
            return 0;
        }

        long now = nowMilliseconds >> TimeShift;
        int skipped = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            if (!AppendsOtherThanContacts(webhook))
            {
                continue;
            }

            for (int i = 0; i < webhook.Count; i++)
            {
                ref StagedRecord record = ref webhook[i];
                if (record.Kind != RecordKind.Contact || record.Screened)
                {
                    continue;
                }

                (int slot, long entry) = Entry(webhook.Arena, in record);
                long noted = Volatile.Read(ref _table[slot]);
                if ((noted & ~TimeMask) == entry && ((now - noted) & TimeMask) < _memoryUnits)
                {
                    record.Screened = true;
                    skipped++;
                }
            }
        }

        return skipped;
    }

    /// <summary>Notes the contact profiles <paramref name="committed"/> appended. Call only after COMMIT, and only for
    /// webhooks whose records are in the inbox (not for dead letters).</summary>
    public void NoteAppended(ParsedWebhook committed, long nowMilliseconds)
    {
        if (!Enabled)
        {
            return;
        }

        long now = (nowMilliseconds >> TimeShift) & TimeMask;
        for (int i = 0; i < committed.Count; i++)
        {
            ref StagedRecord record = ref committed[i];
            // A skipped profile is not noted again: the memory of a profile ends a bounded time after it was last
            // appended, whatever arrives in between.
            if (record.Kind == RecordKind.Contact && !record.Screened)
            {
                (int slot, long entry) = Entry(committed.Arena, in record);
                Volatile.Write(ref _table[slot], entry | now);
            }
        }
    }

    private static bool AppendsOtherThanContacts(ParsedWebhook webhook)
    {
        foreach (ref readonly StagedRecord record in webhook.Records)
        {
            if (record.Kind != RecordKind.Contact && !record.Screened)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The contact's slot, and the entry's upper 48 bits: a 64-bit hash of contact and name (two independently
    /// seeded 32-bit hashes), so that a changed name matches the noted one with a chance of 2^-48.</summary>
    private static (int Slot, long Entry) Entry(Utf8Arena arena, in StagedRecord record)
    {
        ReadOnlySpan<byte> account = arena[record.Account];
        ReadOnlySpan<byte> waId = arena[record.WaId];
        ReadOnlySpan<byte> name = arena[record.Body];
        int slot = (int)((uint)Hash(0, account, waId, default, nameIsNull: true) % Slots);
        long hash64 = ((long)Hash(1, account, waId, name, record.Body.IsNull) << 32) | (uint)Hash(2, account, waId, name, record.Body.IsNull);
        return (slot, hash64 & ~TimeMask);
    }

    private static int Hash(int seed, ReadOnlySpan<byte> account, ReadOnlySpan<byte> waId, ReadOnlySpan<byte> name, bool nameIsNull)
    {
        var hash = new HashCode();
        hash.Add(seed);
        hash.AddBytes(account);
        hash.Add(0);
        hash.AddBytes(waId);
        hash.Add(nameIsNull);
        hash.AddBytes(name);
        return hash.ToHashCode();
    }
}
